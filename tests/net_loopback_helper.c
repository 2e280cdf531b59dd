/* A small program for tests/test_net_loopback.py: UDP, TCP and (when it may) ICMP over
 * 127.0.0.1, each in one process so its order is fixed.  Exit status 0; 2 when a call
 * that must work failed. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct sockaddr_in lo(unsigned short port)
{
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons(port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static unsigned short port_of(int fd)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	if (getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		return 0;
	return ntohs(a.sin_port);
}

static unsigned short csum(const void *p, int n)
{
	const unsigned short *w = p;
	unsigned long s = 0;
	for (; n > 1; n -= 2)
		s += *w++;
	s = (s >> 16) + (s & 0xffff);
	s += s >> 16;
	return (unsigned short)~s;
}

int main(void)
{
	char buf[256];
	struct sockaddr_in a;

	/* UDP: a datagram to a bound socket */
	int u1 = socket(AF_INET, SOCK_DGRAM, 0), u2 = socket(AF_INET, SOCK_DGRAM, 0);
	a = lo(0);
	if (u1 < 0 || u2 < 0 || bind(u1, (struct sockaddr *)&a, sizeof a) < 0)
		return 2;
	a = lo(port_of(u1));
	if (sendto(u2, "hello", 5, 0, (struct sockaddr *)&a, sizeof a) != 5)
		return 2;
	if (recvfrom(u1, buf, sizeof buf, 0, NULL, NULL) != 5)
		return 2;
	close(u2);
	close(u1);

	/* TCP: connect, accept, write, read, the client closes first */
	int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0);
	a = lo(0);
	if (l < 0 || c < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 4) < 0)
		return 2;
	a = lo(port_of(l));
	if (connect(c, (struct sockaddr *)&a, sizeof a) < 0)
		return 2;
	int s = accept(l, NULL, NULL);
	if (s < 0 || write(c, "ping", 4) != 4 || read(s, buf, sizeof buf) != 4)
		return 2;
	close(c);
	if (read(s, buf, sizeof buf) != 0)
		return 2;
	close(s);
	close(l);

	/* ICMP: an echo to 127.0.0.1 from a ping socket, else a raw one, else none */
	int type = SOCK_DGRAM;
	int p = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
	if (p < 0) {
		type = SOCK_RAW;
		p = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	}
	if (p >= 0) {
		struct icmphdr h;
		char pkt[64];
		memset(pkt, 'x', sizeof pkt);
		memset(&h, 0, sizeof h);
		h.type = ICMP_ECHO;
		h.un.echo.id = htons(0x1234);
		h.un.echo.sequence = htons(1);
		memcpy(pkt, &h, sizeof h);
		((struct icmphdr *)pkt)->checksum = csum(pkt, sizeof pkt);
		a = lo(0);
		if (sendto(p, pkt, sizeof pkt, 0, (struct sockaddr *)&a, sizeof a) != sizeof pkt)
			return 2;
		if (recvfrom(p, buf, sizeof buf, 0, NULL, NULL) != (type == SOCK_RAW ? 84 : 64))
			return 2;
		close(p);
	}
	return 0;
}
