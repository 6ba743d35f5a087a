// The one rule for resource names (users, roles, nodes, tokens...), apart from the zod schemas in types.ts so
// that code on `wsh`'s start-up path can check a name without loading zod.
export const NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;
