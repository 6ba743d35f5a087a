// A few lines of routing on the History API (the proxy answers every /web/… path with index.html).
import { useEffect, useState } from 'react';

export function navigate(to: string): void {
  history.pushState(null, '', to);
  dispatchEvent(new PopStateEvent('popstate'));
}

export function useLocation(): URL {
  const [url, setURL] = useState(() => new URL(location.href));
  useEffect(() => {
    const update = () => setURL(new URL(location.href));
    addEventListener('popstate', update);
    return () => removeEventListener('popstate', update);
  }, []);
  return url;
}
