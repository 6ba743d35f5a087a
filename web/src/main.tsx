import { createRoot } from 'react-dom/client';
import { App } from './App.tsx';
import { initTheme } from './theme.ts';
import '@xterm/xterm/css/xterm.css';
import './styles.css';

initTheme();
createRoot(document.getElementById('root')!).render(<App />);
