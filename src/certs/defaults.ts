// Kept apart from generate.ts so `--help` and commands that never make certificates do not
// load the X.509 library (about 20 MB of memory in every `serve` process otherwise).
export const DEFAULT_VALIDITY_DAYS = 365;
export const DEFAULT_CA_VALIDITY_DAYS = 3650;
