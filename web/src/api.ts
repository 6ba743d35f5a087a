// The browser's side of /webapi: JSON in and out, the CSRF token on every state-changing call, and
// one error type whose message is the server's one line. The session cookie is HttpOnly: this code
// never sees it.
import type { WebMe as Me } from '../../src/api/webapi.ts';

export type { Me };

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code = '',
  ) {
    super(message);
  }
}

let csrf = '';
let onSignedOut: () => void = () => undefined;

export function setSession(me: Me | undefined): void {
  csrf = me?.csrf_token ?? '';
}
export function whenSignedOut(fn: () => void): void {
  onSignedOut = fn;
}
export function csrfToken(): string {
  return csrf;
}

export async function api<T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['x-csrf-token'] = csrf;
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
    });
  } catch {
    throw new ApiError(0, 'cannot reach the proxy');
  }
  const data = (await res.json().catch(() => ({}))) as { error?: { code: string; message: string } };
  if (!res.ok) {
    if (res.status === 401 && !path.startsWith('/webapi/sessions/web')) onSignedOut();
    throw new ApiError(res.status, data.error?.message ?? `request failed (${res.status})`, data.error?.code);
  }
  return data as T;
}
