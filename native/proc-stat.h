/* proc-stat.c: a process's start time, the half of its identity that survives pid reuse. */
#ifndef SVIRT_PROC_STAT_H
#define SVIRT_PROC_STAT_H

/* Field 22 of /proc/PID/stat (clock ticks since boot) of a live process; -1 when it is gone,
 * a zombie, or its stat cannot be read. src/host/proc.ts processStartTime in JS terms. */
long long proc_start_time(long long pid);
#endif
