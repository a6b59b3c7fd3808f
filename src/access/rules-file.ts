/** The access rules file's name in a state dir (a module of its own: verbs stat it without loading the TOML parser). */
export const RULES_FILE = 'access.toml';
