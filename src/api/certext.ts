// Ward's own OpenSSH certificate extensions (PROTOCOL.certkeys: vendor extensions are name@domain),
// next to OpenSSH's permit-* ones. Values are strings; lists and maps are JSON.
export const EXT_ROLES = 'ward-roles@ward.dev';
export const EXT_CLUSTER = 'ward-cluster@ward.dev';
export const EXT_TRAITS = 'ward-traits@ward.dev';
