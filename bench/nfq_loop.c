/*
 * Baseline for the benchmark: the cheapest useful NFQUEUE consumer. It gives
 * every packet NF_REPEAT with mark bit 0x1 set, configured like nfips (GSO,
 * fail-open, 128-byte copy range), so the gap between this and nfips is the
 * cost of nfips itself rather than of the queue.
 *
 *   nfq_loop [queue-num] [queue-maxlen]
 *
 * Prints "nfq_loop: ready" to stderr once bound, and {"verdicted":N} to
 * stdout on SIGTERM/SIGINT.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

#define MARK_MASK 0x1u
#define MARK_VALUE 0x1u
#define COPY_RANGE 128
#define RCVBUF_BYTES (32 * 1024 * 1024)

static volatile sig_atomic_t stop_requested;
static unsigned long long verdicted;
static struct mnl_socket *nl;
static uint32_t queue_num;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static int send_verdict(uint32_t id, uint32_t mark)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_VERDICT, queue_num);

	nfq_nlmsg_verdict_put(nlh, (int)id, NF_REPEAT);
	nfq_nlmsg_verdict_put_mark(nlh, (mark & ~MARK_MASK) | (MARK_VALUE & MARK_MASK));
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -1;
	verdicted++;
	return 0;
}

static int on_packet(const struct nlmsghdr *nlh, void *data)
{
	struct nlattr *attr[NFQA_MAX + 1] = { 0 };
	struct nfqnl_msg_packet_hdr *ph;
	uint32_t mark = 0;

	(void)data;
	if (nfq_nlmsg_parse(nlh, attr) < 0 || attr[NFQA_PACKET_HDR] == NULL)
		return MNL_CB_OK;
	ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
	if (attr[NFQA_MARK] != NULL)
		mark = ntohl(mnl_attr_get_u32(attr[NFQA_MARK]));
	if (send_verdict(ntohl(ph->packet_id), mark) < 0 && errno != EINTR)
		perror("nfq_loop: verdict");
	return MNL_CB_OK;
}

/* Sends one config message and waits for its ACK so a failure is reported, not ignored. */
static int config_request(struct nlmsghdr *nlh, const char *what)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	unsigned int portid = mnl_socket_get_portid(nl);
	ssize_t n;
	int ret = MNL_CB_OK;

	nlh->nlmsg_flags |= NLM_F_ACK;
	nlh->nlmsg_seq = (uint32_t)rand();
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		fprintf(stderr, "nfq_loop: %s: send: %s\n", what, strerror(errno));
		return -1;
	}
	/* Packets may already be queued ahead of the ACK; verdict them rather than strand them. */
	do {
		n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (n < 0)
			break;
		ret = mnl_cb_run(buf, (size_t)n, nlh->nlmsg_seq, portid, on_packet, NULL);
	} while (ret == MNL_CB_OK);
	if (n < 0 || ret < 0) {
		fprintf(stderr, "nfq_loop: %s: %s\n", what, strerror(errno));
		return -1;
	}
	return 0;
}

static int configure(uint32_t maxlen)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh;
	uint32_t flags = NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN;

	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, queue_num);
	nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND);
	if (config_request(nlh, "bind") < 0)
		return -1;

	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, queue_num);
	nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, COPY_RANGE);
	mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
	mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(flags));
	if (maxlen > 0)
		nfq_nlmsg_cfg_put_qmaxlen(nlh, maxlen);
	return config_request(nlh, "params");
}

static void tune_socket(void)
{
	int fd = mnl_socket_get_fd(nl);
	int size = RCVBUF_BYTES;
	int one = 1;

	/* FORCE ignores net.core.rmem_max (we run as root); fall back if not permitted. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	/* Without this an overrun returns ENOBUFS once and the loop would have to resync. */
	setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one));
}

int main(int argc, char **argv)
{
	/* Large enough for a batch of 128-byte copies plus headers in one recv. */
	size_t buflen = 0xffff + (MNL_SOCKET_BUFFER_SIZE / 2);
	char *buf = malloc(buflen);
	uint32_t maxlen = 0;
	unsigned int portid;
	struct sigaction sa;

	if (argc > 1)
		queue_num = (uint32_t)strtoul(argv[1], NULL, 0);
	if (argc > 2)
		maxlen = (uint32_t)strtoul(argv[2], NULL, 0);
	if (buf == NULL)
		return 1;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	/* No SA_RESTART: the blocking recv must return EINTR so we can exit. */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	nl = mnl_socket_open(NETLINK_NETFILTER);
	if (nl == NULL || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		perror("nfq_loop: netlink socket");
		return 1;
	}
	portid = mnl_socket_get_portid(nl);
	tune_socket();
	if (configure(maxlen) < 0)
		return 1;
	fprintf(stderr, "nfq_loop: ready queue=%u\n", queue_num);

	while (!stop_requested) {
		ssize_t n = mnl_socket_recvfrom(nl, buf, buflen);

		if (n < 0) {
			if (errno == EINTR || errno == ENOBUFS)
				continue;
			perror("nfq_loop: recv");
			break;
		}
		if (mnl_cb_run(buf, (size_t)n, 0, portid, on_packet, NULL) < 0 && errno != EINTR) {
			perror("nfq_loop: parse");
			break;
		}
	}

	printf("{\"verdicted\":%llu}\n", verdicted);
	fflush(stdout);
	mnl_socket_close(nl);
	free(buf);
	return 0;
}
