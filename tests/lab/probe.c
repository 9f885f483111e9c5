/* getaddrinfo probe for the resolver lab.
 *
 * Usage: probe NAME
 * Calls getaddrinfo(NAME, NULL, {AF_UNSPEC, SOCK_STREAM, flags 0}) once and prints one JSON line:
 *   {"rc": -2, "error": "EAI_NONAME", "addresses": ["10.0.0.1", "::1"], "elapsed": 0.012}
 * "error" is the EAI_* macro name of rc (null on success), mapped with the libc's own macros so the
 * names are right for glibc and musl alike. Exit status 0 whatever getaddrinfo returned.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static const char *eai_name(int rc) {
	switch (rc) {
	case 0: return NULL;
	case EAI_NONAME: return "EAI_NONAME";
	case EAI_AGAIN: return "EAI_AGAIN";
	case EAI_FAIL: return "EAI_FAIL";
	case EAI_FAMILY: return "EAI_FAMILY";
	case EAI_SOCKTYPE: return "EAI_SOCKTYPE";
	case EAI_SERVICE: return "EAI_SERVICE";
	case EAI_MEMORY: return "EAI_MEMORY";
	case EAI_SYSTEM: return "EAI_SYSTEM";
	case EAI_BADFLAGS: return "EAI_BADFLAGS";
#ifdef EAI_NODATA
	case EAI_NODATA: return "EAI_NODATA";
#endif
#ifdef EAI_ADDRFAMILY
	case EAI_ADDRFAMILY: return "EAI_ADDRFAMILY";
#endif
#ifdef EAI_OVERFLOW
	case EAI_OVERFLOW: return "EAI_OVERFLOW";
#endif
	default: return "EAI_UNKNOWN";
	}
}

int main(int argc, char **argv) {
	struct addrinfo hints, *res = NULL, *ai;
	struct timespec t0, t1;
	char buf[INET6_ADDRSTRLEN];
	const char *err;
	int rc, first = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: %s NAME\n", argv[0]);
		return 2;
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = getaddrinfo(argv[1], NULL, &hints, &res);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	err = eai_name(rc);
	printf("{\"rc\": %d, \"error\": ", rc);
	if (err) printf("\"%s\"", err); else printf("null");
	printf(", \"addresses\": [");
	for (ai = rc == 0 ? res : NULL; ai; ai = ai->ai_next) {
		const void *p = ai->ai_family == AF_INET
			? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
			: (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
		if (!inet_ntop(ai->ai_family, p, buf, sizeof buf)) continue;
		printf("%s\"%s\"", first ? "" : ", ", buf);
		first = 0;
	}
	printf("], \"elapsed\": %.3f}\n",
	       (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	if (rc == 0) freeaddrinfo(res);
	return 0;
}
