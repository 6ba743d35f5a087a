// The shell of the web UI: who is signed in, the navigation their roles allow, and the pages.
import { useCallback, useEffect, useState } from 'react';
import { api, setSession, whenSignedOut, type Me } from './api.ts';
import { navigate, useLocation } from './router.ts';
import { applyTheme, currentTheme, type Theme } from './theme.ts';
import { SignIn } from './pages/SignIn.tsx';
import { Invite } from './pages/Invite.tsx';
import { Servers } from './pages/Servers.tsx';
import { TerminalPage } from './pages/Terminal.tsx';
import { Sessions } from './pages/Sessions.tsx';
import { Audit } from './pages/Audit.tsx';
import { Recordings } from './pages/Recordings.tsx';
import { Player } from './pages/Player.tsx';
import { Users } from './pages/Users.tsx';
import { Roles } from './pages/Roles.tsx';
import { Tokens } from './pages/Tokens.tsx';
import { Account } from './pages/Account.tsx';

/** Pages in the bar; those with `acl` only for roles with that rule (display only: the auth server decides). */
const NAV: Array<{ path: string; label: string; acl?: keyof Me['acl'] }> = [
  { path: '/web/servers', label: 'Servers', acl: 'nodes' },
  { path: '/web/sessions', label: 'Active sessions', acl: 'sessions' },
  { path: '/web/audit', label: 'Audit log', acl: 'events' },
  { path: '/web/recordings', label: 'Recordings', acl: 'recordings' },
  { path: '/web/users', label: 'Users', acl: 'users' },
  { path: '/web/roles', label: 'Roles', acl: 'roles' },
  { path: '/web/tokens', label: 'Join tokens', acl: 'tokens' },
  { path: '/web/account', label: 'Account' },
];

export function App() {
  const url = useLocation();
  const [me, setMe] = useState<Me | undefined | null>(undefined); // undefined: asking; null: signed out
  const [theme, setTheme] = useState<Theme>(currentTheme);
  const path = url.pathname.replace(/\/+$/, '') || '/web';

  const signedIn = useCallback((m: Me) => {
    setSession(m);
    setMe(m);
  }, []);
  useEffect(() => {
    whenSignedOut(() => {
      setSession(undefined);
      setMe(null);
    });
    api<Me>('GET', '/webapi/sessions/web/current').then(signedIn, () => setMe(null));
  }, [signedIn]);

  const toggleTheme = () => {
    const next = theme === 'dark' ? 'light' : 'dark';
    applyTheme(next);
    setTheme(next);
  };

  const invite = /^\/web\/(invite|reset)\/([0-9a-f]{64})$/.exec(path);
  if (invite) {
    return (
      <Invite
        kind={invite[1] as 'invite' | 'reset'}
        token={invite[2]!}
        onSignedIn={(m) => {
          signedIn(m);
          navigate('/web/servers');
        }}
      />
    );
  }
  if (me === undefined) return <div className="center muted">Loading…</div>;
  if (me === null) {
    return (
      <SignIn
        onSignedIn={(m) => {
          signedIn(m);
          if (path === '/web/login' || path === '/web') navigate('/web/servers');
        }}
      />
    );
  }
  if (path === '/web/terminal') return <TerminalPage me={me} url={url} theme={theme} />;

  const signOut = async () => {
    await api('DELETE', '/webapi/sessions/web/current').catch(() => undefined);
    setSession(undefined);
    setMe(null);
    navigate('/web/login');
  };
  const allowed = NAV.filter((n) => !n.acl || me.acl[n.acl]);
  const current = path === '/web' || path === '/web/login' ? (allowed[0]?.path ?? '/web/sessions') : path;
  let page;
  const rec = /^\/web\/recordings\/([0-9a-f-]{36})$/.exec(current);
  if (rec) page = <Player sid={rec[1]!} theme={theme} />;
  else if (current === '/web/servers') page = <Servers me={me} />;
  else if (current === '/web/sessions') page = <Sessions me={me} />;
  else if (current === '/web/audit') page = <Audit />;
  else if (current === '/web/recordings') page = <Recordings />;
  else if (current === '/web/users') page = <Users />;
  else if (current === '/web/roles') page = <Roles />;
  else if (current === '/web/tokens') page = <Tokens />;
  else if (current === '/web/account') page = <Account />;
  else page = <p className="muted">No such page.</p>;

  return (
    <div className="shell">
      <header className="topbar">
        <span className="brand">Ward</span>
        <nav>
          {allowed.map((n) => (
            <a
              key={n.path}
              href={n.path}
              className={current.startsWith(n.path) ? 'active' : ''}
              onClick={(e) => {
                e.preventDefault();
                navigate(n.path);
              }}
            >
              {n.label}
            </a>
          ))}
        </nav>
        <span className="spacer" />
        <button className="ghost" onClick={toggleTheme} title="Switch between light and dark" aria-label="Toggle theme">
          {theme === 'dark' ? '☀' : '☾'}
        </button>
        <span className="who" title={`roles: ${me.roles.join(', ')}`}>
          {me.user}
        </span>
        <button className="ghost" onClick={() => void signOut()}>
          Sign out
        </button>
      </header>
      <main>{page}</main>
    </div>
  );
}
