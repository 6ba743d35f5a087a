// Light or dark: the system's choice (prefers-color-scheme, in CSS) until the user picks one.
export type Theme = 'light' | 'dark';

export function currentTheme(): Theme {
  const saved = localStorage.getItem('ward-theme');
  if (saved === 'light' || saved === 'dark') return saved;
  return matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

export function applyTheme(theme: Theme): void {
  document.documentElement.dataset.theme = theme;
  localStorage.setItem('ward-theme', theme);
}

export function initTheme(): void {
  const saved = localStorage.getItem('ward-theme');
  if (saved === 'light' || saved === 'dark') document.documentElement.dataset.theme = saved;
}

/** xterm colours for a theme (xterm draws on a canvas, so CSS variables do not reach it). */
export function terminalTheme(theme: Theme) {
  return theme === 'dark'
    ? { background: '#0f1419', foreground: '#d6dde6', cursor: '#7cc4ff', selectionBackground: '#2c4a66' }
    : { background: '#fbfcfd', foreground: '#1c2430', cursor: '#1b5fa8', selectionBackground: '#bcd7f5' };
}
