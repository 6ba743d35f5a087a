// The release of this checkout; clients and servers report it (wctl status shows both sides).
export const VERSION = '0.1.0';
