#ifndef SVIRT_DEVFILTER_H
#define SVIRT_DEVFILTER_H
#include <stddef.h>

/* Attaches a device allow-list of RULEs ("c 1:3 rw", "b 7:* rwm", "c *:* m") to the cgroup2
 * directory DIR. 0, or -1 with one line in err (nothing attached). devfilter.c. */
int devfilter_apply(const char *dir, int nrules, const char *const *rules, char *err, size_t err_size);

#endif
