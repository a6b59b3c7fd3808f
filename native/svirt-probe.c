/*
 * svirt-probe: one hostile action, run inside a guest's confinement (started through
 * svirt-exec with that guest's spec) to show what code in a compromised QEMU could do.
 * Used by the attack matrix for reaches QMP has no command for (signals, /proc).
 *
 *   svirt-probe kill PID SIGNUM     send a signal
 *   svirt-probe read PATH           open PATH read-only and read one byte
 *   svirt-probe write PATH          open PATH write-only (O_APPEND, no create)
 *   svirt-probe connect PORT        TCP connect to 127.0.0.1:PORT
 *
 * Exit 0: the action succeeded. Exit 1: it was refused; one line "errno NAME" on stdout.
 * Exit 2: usage error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int refused(void)
{
	int e = errno;
	printf("errno %s\n", strerrorname_np(e) ? strerrorname_np(e) : "unknown");
	return 1;
}

static long number(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *s == '\0' || *end != '\0' || v < 0) {
		fprintf(stderr, "svirt-probe: not a number: %s\n", s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "kill") == 0) {
		if (kill((pid_t)number(argv[2]), (int)number(argv[3])) != 0)
			return refused();
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "read") == 0) {
		char c;
		int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
		if (fd < 0 || read(fd, &c, 1) < 0)
			return refused();
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "write") == 0) {
		int fd = open(argv[2], O_WRONLY | O_APPEND | O_CLOEXEC);
		if (fd < 0)
			return refused();
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "connect") == 0) {
		struct sockaddr_in sa;
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		long port = number(argv[2]);

		if (fd < 0 || port > 65535)
			return refused();
		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		sa.sin_port = htons((unsigned short)port);
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
			return refused();
		return 0;
	}
	fprintf(stderr, "usage: svirt-probe kill PID SIG | read PATH | write PATH | connect PORT\n");
	return 2;
}
