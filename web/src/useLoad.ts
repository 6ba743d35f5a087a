import { useCallback, useEffect, useState } from 'react';
import { api } from './api.ts';

/** GETs `path` (again when `reload` is called): the data, or the server's one-line error (403 included). */
export function useLoad<T>(path: string | undefined) {
  const [data, setData] = useState<T | undefined>();
  const [error, setError] = useState('');
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (!path) return;
    let live = true;
    api<T>('GET', path).then(
      (d) => live && (setData(d), setError('')),
      (err: Error) => live && setError(err.message),
    );
    return () => {
      live = false;
    };
  }, [path, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, reload };
}
