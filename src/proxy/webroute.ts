// What one /webapi route is: its method and path, and what its handler is given (the caller's web session,
// the path's captures, the body on demand). The table of routes is webroutes.ts, with the second-factor
// ones from webmfa.ts; web.ts matches a request against it.
import type { ActiveWebSession } from './websession.ts';

export interface RouteContext {
  session: ActiveWebSession;
  params: string[];
  query: URLSearchParams;
  body: () => Promise<unknown>;
  /** host:port the browser reached this proxy by, for links the answer contains. */
  publicAddr: string;
}

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: RegExp;
  handle(ctx: RouteContext): Promise<unknown>;
}
