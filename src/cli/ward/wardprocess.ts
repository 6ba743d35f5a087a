// What starting a ward process hands back (start.ts for any process, hostprocess.ts for one without an auth
// server): the addresses its services listen on and how to stop it. Named apart from node/process.ts,
// which is a user's command spawned by the Node Service.
export interface WardProcess {
  clusterName: string;
  authAddr?: string;
  proxyAddr?: string;
  nodeAddr?: string;
  caPin?: string;
  close(): Promise<void>;
}
