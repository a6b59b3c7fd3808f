/* proc-stat.c: see proc-stat.h. Shared by svirt-cleanup and the addon (reconcile reads one per
 * running guest on every command). */
#include "proc-stat.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

long long proc_start_time(long long pid)
{
	/* Field 22 ends within the first ~500 bytes: the pid, a name of at most 64 bytes, 19
	 * numeric fields. */
	char path[64], buf[1024];
	if (pid <= 0)
		return -1;
	snprintf(path, sizeof path, "/proc/%lld/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* The name (field 2) may hold spaces and parentheses: fields restart after the last ')'. */
	char *p = strrchr(buf, ')');
	if (p == NULL || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X')
		return -1;
	p += 2;
	for (int i = 0; i < 19; i++) {
		p = strchr(p, ' ');
		if (p == NULL)
			return -1;
		p++;
	}
	char *end;
	long long t = strtoll(p, &end, 10);
	return end == p || t < 0 ? -1 : t;
}
