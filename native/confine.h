/*
 * svirt-exec's confinement (confine.c): read the spec on an fd, apply it to this process, exec.
 */
#ifndef SVIRT_CONFINE_H
#define SVIRT_CONFINE_H

/* Reads the spec from spec_fd (to its end), applies each step, then execs argv[0] with argv.
 * Never returns: a failing step prints its one line and exits with its status (201-212). */
_Noreturn void confine_exec(int spec_fd, char *const *argv);

/* Prints "svirt-exec: spec: <usage>: Invalid argument" and exits with the spec step's status. */
_Noreturn void confine_usage(const char *usage);

#endif
