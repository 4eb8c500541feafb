#include "nfq_socket.h"

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif
#ifndef NETLINK_NO_ENOBUFS
#define NETLINK_NO_ENOBUFS 5
#endif

namespace nfips {

namespace {
// Room for the netlink/nfqueue headers and attributes around the copied bytes
// (packet hdr, mark, timestamp, four ifindexes, hwaddr, cap len, ct, uid/gid).
constexpr uint32_t kMsgOverhead = 1024;
// One verdict message: nlmsghdr + nfgenmsg + verdict hdr attr + mark attr.
constexpr size_t kVerdictMsgMax = 64;
// Keep each sendto() well under the default netlink send buffer.
constexpr size_t kSendChunk = 32 * 1024;
constexpr int kSendRetries = 3;
constexpr int kConfigTimeoutMs = 2000;

std::string ErrnoText(const char* what, int err) {
  return std::string(what) + ": " + strerror(err);
}

constexpr size_t kAttrStart = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg));

bool IsPacketMsg(const nlmsghdr* nlh) {
  return (nlh->nlmsg_type >> 8) == NFNL_SUBSYS_QUEUE && (nlh->nlmsg_type & 0xff) == NFQNL_MSG_PACKET;
}

// Walks the attributes in the first `avail` bytes of a packet message,
// checking every length against what is really there.
MsgFacts ScanMsg(const nlmsghdr* nlh, size_t avail) {
  MsgFacts f;
  size_t end = nlh->nlmsg_len < avail ? nlh->nlmsg_len : avail;
  const auto* p = reinterpret_cast<const uint8_t*>(nlh);
  size_t off = kAttrStart;
  bool whole = true;
  while (off + NLA_HDRLEN <= end) {
    const auto* a = reinterpret_cast<const nlattr*>(p + off);
    if (a->nla_len < NLA_HDRLEN) return f;  // garbage: trust nothing further
    int type = a->nla_type & NLA_TYPE_MASK;
    if (off + a->nla_len > end) {
      f.cutType = type;
      f.cutLen = a->nla_len;
      whole = false;
      break;
    }
    if (type == NFQA_PACKET_HDR && a->nla_len >= NLA_HDRLEN + sizeof(nfqnl_msg_packet_hdr)) {
      f.haveId = true;
      f.id = ntohl(reinterpret_cast<const nfqnl_msg_packet_hdr*>(p + off + NLA_HDRLEN)->packet_id);
    } else if (type == NFQA_MARK && a->nla_len >= NLA_HDRLEN + sizeof(uint32_t)) {
      uint32_t v;
      memcpy(&v, p + off + NLA_HDRLEN, sizeof(v));
      f.mark = ntohl(v);
      f.markKnown = true;
    }
    off += NLA_ALIGN(a->nla_len);
  }
  if (off < end && f.cutType < 0) whole = false;  // a cut attribute header
  if (whole && end == nlh->nlmsg_len) f.markKnown = true;
  if (f.cutType == NFQA_PAYLOAD) f.markKnown = true;
  return f;
}
}  // namespace

NfqSocket::NfqSocket(const QueueOptions& opts) : opts_(opts) {
  slotSize_ = (opts_.copyRange + kMsgOverhead + 63) & ~63u;
  pkt_.resize(static_cast<size_t>(slotSize_) * opts_.batchSize);
  meta_.resize(static_cast<size_t>(F_FIELD_COUNT) * opts_.batchSize);
  sendBuf_.resize(kVerdictMsgMax * opts_.batchSize + kSendChunk);
  msgs_.resize(opts_.batchSize);
  iovs_.resize(opts_.batchSize);
  size_t offered = opts_.recvBytes && opts_.recvBytes < slotSize_ ? opts_.recvBytes : slotSize_;
  for (uint32_t i = 0; i < opts_.batchSize; i++) {
    iovs_[i].iov_base = pkt_.data() + static_cast<size_t>(i) * slotSize_;
    iovs_[i].iov_len = offered;
    memset(&msgs_[i], 0, sizeof(mmsghdr));
    msgs_[i].msg_hdr.msg_iov = &iovs_[i];
    msgs_[i].msg_hdr.msg_iovlen = 1;
  }
}

NfqSocket::~NfqSocket() { Close(); }

int NfqSocket::fd() const { return nl_ ? mnl_socket_get_fd(nl_) : -1; }

bool NfqSocket::Open() {
  error_.clear();
  warnings_.clear();
  nl_ = mnl_socket_open(NETLINK_NETFILTER);
  if (!nl_) {
    error_ = ErrnoText("cannot open netlink socket", errno);
    return false;
  }
  if (mnl_socket_bind(nl_, 0, MNL_SOCKET_AUTOPID) < 0) {
    error_ = ErrnoText("cannot bind netlink socket", errno);
    mnl_socket_close(nl_);
    nl_ = nullptr;
    return false;
  }
  portId_ = mnl_socket_get_portid(nl_);
  int fd = mnl_socket_get_fd(nl_);
  int size = static_cast<int>(opts_.rcvBuf);
  // FORCE bypasses rmem_max for root; plain SO_RCVBUF is the fallback.
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0 &&
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)) < 0) {
    warnings_.push_back(ErrnoText("cannot set socket receive buffer", errno));
  }
  int sndSize = 1 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndSize, sizeof(sndSize));
  int one = 1;
  if (setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one)) < 0) {
    warnings_.push_back(ErrnoText("cannot set NETLINK_NO_ENOBUFS", errno));
  }
  if (!Configure()) {
    // Unbind whatever part of the configuration took, then close.
    Close();
    return false;
  }
  return true;
}

bool NfqSocket::Configure() {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  char* p = buf.data();
  uint32_t seq = static_cast<uint32_t>(time(nullptr));
  uint32_t first = seq;

  nlmsghdr* nlh = nfq_nlmsg_put(p, NFQNL_MSG_CONFIG, opts_.queueNum);
  nlh->nlmsg_flags |= NLM_F_ACK;
  nlh->nlmsg_seq = seq++;
  nfq_nlmsg_cfg_put_cmd(nlh, AF_UNSPEC, NFQNL_CFG_CMD_BIND);
  p += NLMSG_ALIGN(nlh->nlmsg_len);

  nlh = nfq_nlmsg_put(p, NFQNL_MSG_CONFIG, opts_.queueNum);
  nlh->nlmsg_flags |= NLM_F_ACK;
  nlh->nlmsg_seq = seq++;
  nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, static_cast<int>(opts_.copyRange));
  p += NLMSG_ALIGN(nlh->nlmsg_len);

  nlh = nfq_nlmsg_put(p, NFQNL_MSG_CONFIG, opts_.queueNum);
  nlh->nlmsg_flags |= NLM_F_ACK;
  nlh->nlmsg_seq = seq++;
  nfq_nlmsg_cfg_put_qmaxlen(nlh, opts_.maxLen);
  p += NLMSG_ALIGN(nlh->nlmsg_len);

  if (!SendConfigAndWaitAcks(buf.data(), p - buf.data(), first, seq - first)) return false;

  // Flags are optional kernel features: a refusal is a warning, as in Suricata.
  uint32_t flags = (opts_.gso ? NFQA_CFG_F_GSO : 0) | (opts_.failOpen ? NFQA_CFG_F_FAIL_OPEN : 0);
  uint32_t mask = NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN;
  p = buf.data();
  first = seq;
  nlh = nfq_nlmsg_put(p, NFQNL_MSG_CONFIG, opts_.queueNum);
  nlh->nlmsg_flags |= NLM_F_ACK;
  nlh->nlmsg_seq = seq++;
  mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
  mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(mask));
  p += NLMSG_ALIGN(nlh->nlmsg_len);
  if (!SendConfigAndWaitAcks(buf.data(), p - buf.data(), first, 1)) {
    warnings_.push_back("queue flags (GSO/fail-open) refused: " + error_);
    error_.clear();
  }
  return true;
}

bool NfqSocket::SendConfigAndWaitAcks(char* buf, size_t len, uint32_t firstSeq, uint32_t count) {
  if (mnl_socket_sendto(nl_, buf, len) < 0) {
    error_ = ErrnoText("cannot send queue config", errno);
    return false;
  }
  int fd = mnl_socket_get_fd(nl_);
  std::vector<char> rbuf(MNL_SOCKET_BUFFER_SIZE + slotSize_);
  uint32_t acked = 0;
  int firstErr = 0;
  while (acked < count) {
    pollfd pfd{fd, POLLIN, 0};
    int pr = poll(&pfd, 1, kConfigTimeoutMs);
    if (pr <= 0) {
      error_ = pr == 0 ? "timed out waiting for the kernel to acknowledge queue config"
                       : ErrnoText("poll", errno);
      return false;
    }
    ssize_t r = recv(fd, rbuf.data(), rbuf.size(), 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      error_ = ErrnoText("cannot read queue config ack", errno);
      return false;
    }
    int rest = static_cast<int>(r);
    for (auto* nlh = reinterpret_cast<nlmsghdr*>(rbuf.data()); mnl_nlmsg_ok(nlh, rest); nlh = mnl_nlmsg_next(nlh, &rest)) {
      if (nlh->nlmsg_type == NLMSG_ERROR) {
        if (nlh->nlmsg_seq < firstSeq || nlh->nlmsg_seq >= firstSeq + count) continue;
        auto* err = static_cast<nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        if (err->error != 0 && firstErr == 0) firstErr = -err->error;
        acked++;
      } else if ((nlh->nlmsg_type & 0xff) == NFQNL_MSG_PACKET) {
        // A packet queued before configuration finished (e.g. rules left
        // behind by a crash). Nothing can inspect it yet: failure verdict.
        nlattr* attr[NFQA_MAX + 1] = {};
        if (nfq_nlmsg_parse(nlh, attr) >= 0 && attr[NFQA_PACKET_HDR]) {
          auto* ph = static_cast<nfqnl_msg_packet_hdr*>(mnl_attr_get_payload(attr[NFQA_PACKET_HDR]));
          uint32_t mark = attr[NFQA_MARK] ? ntohl(mnl_attr_get_u32(attr[NFQA_MARK])) : 0;
          counters_[C_RECEIVED] += 1;
          SendFailVerdictNow(ntohl(ph->packet_id), mark);
        }
      }
    }
  }
  if (firstErr != 0) {
    error_ = firstErr == EBUSY ? "queue " + std::to_string(opts_.queueNum) +
                                     " is already bound by another process"
                               : ErrnoText("kernel refused queue config", firstErr);
    return false;
  }
  return true;
}

void NfqSocket::Close() {
  if (!nl_) return;
  char buf[256];
  nlmsghdr* nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, opts_.queueNum);
  nfq_nlmsg_cfg_put_cmd(nlh, AF_UNSPEC, NFQNL_CFG_CMD_UNBIND);
  mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len);
  mnl_socket_close(nl_);
  nl_ = nullptr;
}

uint32_t NfqSocket::RecvBatch() { return Receive(MSG_DONTWAIT, 0, 0); }
uint32_t NfqSocket::RecvBatchBlocking() { return Receive(MSG_WAITFORONE, 0, 0); }
uint32_t NfqSocket::RecvMore(uint32_t from) {
  if (from >= opts_.batchSize || slotsUsed_ >= opts_.batchSize) return from;
  return Receive(MSG_DONTWAIT, from, slotsUsed_);
}

void NfqSocket::SetRecvTimeout(int ms) {
  if (!nl_) return;
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  setsockopt(mnl_socket_get_fd(nl_), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

uint32_t NfqSocket::Receive(int flags, uint32_t fromPacket, uint32_t fromSlot) {
  if (!nl_) return fromPacket;
  int fd = mnl_socket_get_fd(nl_);
  timespec now{0, 0};
  bool stamped = false;
  uint32_t n = fromPacket;
  uint32_t slots = fromSlot;
  const uint32_t cap = opts_.batchSize;
  while (slots < cap) {
    unsigned want = cap - slots;
    // Only the first call may block: later ones just gather what is queued.
    int r = recvmmsg(fd, msgs_.data() + slots, want, slots == fromSlot ? flags : MSG_DONTWAIT, nullptr);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == ENOBUFS) {
        counters_[C_ENOBUFS] += 1;
        continue;
      }
      counters_[C_RECV_ERRORS] += 1;
      break;
    }
    if (!stamped) {
      // The arrival time, not the time the wait began (up to the receive
      // timeout earlier): it stands in for packets without a timestamp.
      clock_gettime(CLOCK_REALTIME, &now);
      if (stampWake_) {
        timespec mono;
        clock_gettime(CLOCK_MONOTONIC, &mono);
        wokeAtNs_ = static_cast<uint64_t>(mono.tv_sec) * 1000000000u + static_cast<uint64_t>(mono.tv_nsec);
      }
      stamped = true;
    }
    for (int i = 0; i < r; i++) {
      mmsghdr& m = msgs_[slots + i];
      bool cut = (m.msg_hdr.msg_flags & MSG_TRUNC) != 0;
      if (cut) counters_[C_TRUNCATED_MSGS] += 1;
      ParseDatagram(static_cast<uint8_t*>(iovs_[slots + i].iov_base), m.msg_len, cut, n,
                    static_cast<uint32_t>(now.tv_sec), static_cast<uint32_t>(now.tv_nsec));
    }
    slots += static_cast<uint32_t>(r);
    // A short read means the socket is drained; skip the EAGAIN syscall.
    if (static_cast<unsigned>(r) < want) break;
  }
  slotsUsed_ = slots;
  uint32_t* verdict = meta_.data() + col(F_VERDICT, 0);
  for (uint32_t i = fromPacket; i < n; i++) verdict[i] = VERDICT_UNSET;
  if (n > fromPacket) {
    counters_[C_RECEIVED] += n - fromPacket;
    if (fromPacket == 0) counters_[C_BATCHES] += 1;
    if (n > counters_[C_MAX_BATCH]) counters_[C_MAX_BATCH] = n;
  }
  return n;
}

void NfqSocket::ParseDatagram(uint8_t* base, size_t len, bool cut, uint32_t& n, uint32_t sec, uint32_t nsec) {
  int rest = static_cast<int>(len);
  auto* nlh = reinterpret_cast<nlmsghdr*>(base);
  for (; mnl_nlmsg_ok(nlh, rest); nlh = mnl_nlmsg_next(nlh, &rest)) {
    if (!IsPacketMsg(nlh)) continue;
    if (n < opts_.batchSize) {
      if (ParsePacketMsg(nlh, base, n, sec, nsec)) n++;
    } else {
      // More packet messages in one datagram than the batch has room for:
      // cannot be inspected, but must not be left without a verdict.
      nlattr* attr[NFQA_MAX + 1] = {};
      if (nfq_nlmsg_parse(nlh, attr) >= 0 && attr[NFQA_PACKET_HDR]) {
        auto* ph = static_cast<nfqnl_msg_packet_hdr*>(mnl_attr_get_payload(attr[NFQA_PACKET_HDR]));
        uint32_t mark = attr[NFQA_MARK] ? ntohl(mnl_attr_get_u32(attr[NFQA_MARK])) : 0;
        counters_[C_RECEIVED] += 1;
        SendFailVerdictNow(ntohl(ph->packet_id), mark);
      } else {
        counters_[C_PARSE_ERRORS] += 1;
      }
    }
  }
  // The receive buffer cut the last message: libmnl stops before it, but
  // its packet waits in the kernel for a verdict all the same.
  if (cut && rest >= static_cast<int>(sizeof(nlmsghdr)) && nlh->nlmsg_len > static_cast<uint32_t>(rest) &&
      IsPacketMsg(nlh)) {
    ParseCutMsg(nlh, static_cast<size_t>(rest), n, sec, nsec);
  }
}

// When only the payload (always the last attribute) was cut, the packet is
// read like any other with fewer bytes copied, and the rules decide it (the
// decoder then says what could not be seen). A cut anywhere else leaves
// metadata unknown: the failure verdict, keeping the mark if it is known.
void NfqSocket::ParseCutMsg(nlmsghdr* nlh, size_t avail, uint32_t& n, uint32_t sec, uint32_t nsec) {
  MsgFacts f = ScanMsg(nlh, avail);
  if (f.cutType == NFQA_PAYLOAD && n < opts_.batchSize) {
    size_t payloadAt = avail;
    // Find the payload attribute again and shorten it to what arrived.
    auto* p = reinterpret_cast<uint8_t*>(nlh);
    for (size_t off = kAttrStart; off + NLA_HDRLEN <= avail;) {
      auto* a = reinterpret_cast<nlattr*>(p + off);
      if (off + a->nla_len > avail) {
        payloadAt = off;
        break;
      }
      off += NLA_ALIGN(a->nla_len);
    }
    if (payloadAt + NLA_HDRLEN <= avail) {
      reinterpret_cast<nlattr*>(p + payloadAt)->nla_len = static_cast<uint16_t>(avail - payloadAt);
      nlh->nlmsg_len = static_cast<uint32_t>(avail);
      if (ParsePacketMsg(nlh, pkt_.data(), n, sec, nsec, f.cutLen - NLA_HDRLEN)) n++;
      return;
    }
  }
  FailUnparsed(nlh, avail);
}

bool NfqSocket::ParsePacketMsg(const nlmsghdr* nlh, uint8_t* base, uint32_t i, uint32_t sec, uint32_t nsec, uint32_t origLen) {
  (void)base;
  nlattr* attr[NFQA_MAX + 1] = {};
  if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR]) {
    FailUnparsed(nlh, nlh->nlmsg_len);
    return false;
  }
  uint32_t* m = meta_.data();
  auto* ph = static_cast<nfqnl_msg_packet_hdr*>(mnl_attr_get_payload(attr[NFQA_PACKET_HDR]));
  m[col(F_ID, i)] = ntohl(ph->packet_id);
  m[col(F_HW_PROTO, i)] = ntohs(ph->hw_protocol);
  m[col(F_HOOK, i)] = ph->hook;
  m[col(F_MARK, i)] = attr[NFQA_MARK] ? ntohl(mnl_attr_get_u32(attr[NFQA_MARK])) : 0;
  m[col(F_IN_IFINDEX, i)] = attr[NFQA_IFINDEX_INDEV] ? ntohl(mnl_attr_get_u32(attr[NFQA_IFINDEX_INDEV])) : 0;
  m[col(F_OUT_IFINDEX, i)] = attr[NFQA_IFINDEX_OUTDEV] ? ntohl(mnl_attr_get_u32(attr[NFQA_IFINDEX_OUTDEV])) : 0;
  uint32_t capLen = 0;
  uint32_t off = NO_OFFSET;
  if (attr[NFQA_PAYLOAD]) {
    capLen = mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]);
    off = static_cast<uint32_t>(static_cast<const uint8_t*>(mnl_attr_get_payload(attr[NFQA_PAYLOAD])) - pkt_.data());
  }
  m[col(F_CAP_LEN, i)] = capLen;
  m[col(F_OFFSET, i)] = off;
  // Without NFQA_CAP_LEN the kernel copied the whole packet; a payload cut
  // here (origLen) was that long.
  m[col(F_ORIG_LEN, i)] = attr[NFQA_CAP_LEN] ? ntohl(mnl_attr_get_u32(attr[NFQA_CAP_LEN])) : origLen > capLen ? origLen : capLen;
  if (attr[NFQA_HWADDR]) {
    auto* hw = static_cast<nfqnl_msg_packet_hw*>(mnl_attr_get_payload(attr[NFQA_HWADDR]));
    m[col(F_HWADDR_OFF, i)] = ntohs(hw->hw_addrlen) >= 6
                                  ? static_cast<uint32_t>(reinterpret_cast<const uint8_t*>(hw->hw_addr) - pkt_.data())
                                  : NO_OFFSET;
  } else {
    m[col(F_HWADDR_OFF, i)] = NO_OFFSET;
  }
  if (attr[NFQA_TIMESTAMP]) {
    auto* ts = static_cast<nfqnl_msg_packet_timestamp*>(mnl_attr_get_payload(attr[NFQA_TIMESTAMP]));
    m[col(F_TS_SEC, i)] = static_cast<uint32_t>(be64toh(ts->sec));
    m[col(F_TS_NSEC, i)] = static_cast<uint32_t>(be64toh(ts->usec) * 1000);
  } else {
    // Forwarded skbs usually carry no timestamp; the receive time stands in.
    m[col(F_TS_SEC, i)] = sec;
    m[col(F_TS_NSEC, i)] = nsec;
  }
  return true;
}

// A message that cannot be read as a packet (libmnl refuses it, or it was cut
// before its payload) still names its packet; that packet gets the failure
// verdict rather than waiting in the kernel until the queue is unbound.
void NfqSocket::FailUnparsed(const nlmsghdr* nlh, size_t avail) {
  MsgFacts f = ScanMsg(nlh, avail);
  if (!f.haveId) {
    counters_[C_PARSE_ERRORS] += 1;
    return;
  }
  counters_[C_RECEIVED] += 1;
  SendFailVerdictNow(f.id, f.mark, f.markKnown);
}

void NfqSocket::Flush(char* buf, size_t len) {
  for (int attempt = 0; attempt < kSendRetries; attempt++) {
    if (mnl_socket_sendto(nl_, buf, len) >= 0) return;
    if (errno != EINTR && errno != EAGAIN && errno != ENOBUFS) break;
  }
  counters_[C_SEND_ERRORS] += 1;
}

void NfqSocket::SendFailVerdictNow(uint32_t id, uint32_t mark, bool markKnown) {
  if (!nl_) return;
  char buf[kVerdictMsgMax];
  nlmsghdr* nlh = nfq_nlmsg_put(buf, NFQNL_MSG_VERDICT, opts_.queueNum);
  uint32_t v = opts_.failVerdict;
  // Repeat needs our bit in the mark, and a verdict's mark replaces the
  // whole field: with the packet's own mark unknown, setting one would wipe
  // the operator's bits, and leaving it out would queue the packet again
  // forever. Accept leaves the mark as it is.
  if (v == NF_REPEAT_V && !markKnown) v = NF_ACCEPT_V;
  nfq_nlmsg_verdict_put(nlh, static_cast<int>(id), static_cast<int>(v));
  if (v == NF_REPEAT_V) {
    nfq_nlmsg_verdict_put_mark(nlh, (mark & ~opts_.markMask) | (opts_.markValue & opts_.markMask));
  }
  counters_[C_FAIL_VERDICTS] += 1;
  Flush(buf, nlh->nlmsg_len);
}

void NfqSocket::SendVerdicts(uint32_t to, uint32_t from) {
  if (!nl_ || to <= from) return;
  uint32_t* m = meta_.data();
  const uint32_t* ids = m + col(F_ID, 0);
  const uint32_t* marks = m + col(F_MARK, 0);
  const uint32_t* verdicts = m + col(F_VERDICT, 0);
  const uint32_t* vmarks = m + col(F_VERDICT_MARK, 0);
  char* start = sendBuf_.data();
  char* p = start;
  // Summed here, written once per batch.
  uint32_t drops = 0, repeats = 0, accepts = 0, fails = 0;
  for (uint32_t i = from; i < to; i++) {
    uint32_t v = verdicts[i];
    uint32_t mark = vmarks[i];
    bool setMark = true;
    if (v == NF_DROP_V) {
      setMark = false;
      drops++;
    } else if (v == NF_REPEAT_V) {
      repeats++;
    } else if (v == NF_ACCEPT_V) {
      accepts++;
    } else {
      // Unset or unknown: the configured failure verdict, never silence.
      fails++;
      v = opts_.failVerdict;
      setMark = v == NF_REPEAT_V;
      mark = (marks[i] & ~opts_.markMask) | (opts_.markValue & opts_.markMask);
    }
    nlmsghdr* nlh = nfq_nlmsg_put(p, NFQNL_MSG_VERDICT, opts_.queueNum);
    nfq_nlmsg_verdict_put(nlh, static_cast<int>(ids[i]), static_cast<int>(v));
    // The mark travels in every message: the kernel's batch verdict would
    // apply one mark to all ids and lose each packet's own (Suricata's pitfall).
    if (setMark) nfq_nlmsg_verdict_put_mark(nlh, mark);
    p += NLMSG_ALIGN(nlh->nlmsg_len);
    if (static_cast<size_t>(p - start) >= kSendChunk) {
      Flush(start, p - start);
      p = start;
    }
  }
  if (p != start) Flush(start, p - start);
  if (drops) counters_[C_VERDICT_DROP] += drops;
  if (repeats) counters_[C_VERDICT_REPEAT] += repeats;
  if (accepts) counters_[C_VERDICT_ACCEPT] += accepts;
  if (fails) counters_[C_FAIL_VERDICTS] += fails;
}

void NfqSocket::FailBatch(uint32_t to, uint32_t from) {
  uint32_t* verdict = meta_.data() + col(F_VERDICT, 0);
  for (uint32_t i = from; i < to; i++) verdict[i] = VERDICT_UNSET;
  SendVerdicts(to, from);
}

}  // namespace nfips
