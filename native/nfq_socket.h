// One NFQUEUE queue bound on its own netlink socket. No N-API in here: the
// addon wraps it, and it stays testable from plain C++ if ever needed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

struct mnl_socket;
struct mmsghdr;
struct iovec;
struct nlmsghdr;

namespace nfips {

// Per-packet metadata fields, each a Uint32 column of batchSize entries in one
// buffer shared with JS. The order is part of the batch contract (src/batch/layout.ts).
enum Field : uint32_t {
  F_ID = 0,
  F_MARK,
  F_HOOK,
  F_HW_PROTO,
  F_IN_IFINDEX,
  F_OUT_IFINDEX,
  F_ORIG_LEN,
  F_CAP_LEN,
  F_OFFSET,      // byte offset of the L3 header in the packet buffer
  F_HWADDR_OFF,  // byte offset of the source MAC, or NO_OFFSET
  F_TS_SEC,
  F_TS_NSEC,
  F_VERDICT,     // written by JS
  F_VERDICT_MARK,  // written by JS
  F_FIELD_COUNT
};

// Counters, each a double in a (usually shared) Float64Array owned by JS.
enum Counter : uint32_t {
  C_RECEIVED = 0,
  C_BATCHES,
  C_VERDICT_ACCEPT,
  C_VERDICT_REPEAT,
  C_VERDICT_DROP,
  C_FAIL_VERDICTS,  // packets that got the failure verdict (JS threw, closing, bad verdict)
  C_RECV_ERRORS,
  C_ENOBUFS,
  C_SEND_ERRORS,
  C_PARSE_ERRORS,   // messages we could not read a packet id from
  C_JS_ERRORS,
  C_MAX_BATCH,
  C_TRUNCATED_MSGS,  // datagrams cut short by the receive buffer (their packet still gets a verdict)
  C_COUNTER_COUNT
};

constexpr uint32_t NO_OFFSET = 0xffffffffu;
constexpr uint32_t VERDICT_UNSET = 0xffffffffu;
constexpr uint32_t NF_DROP_V = 0;
constexpr uint32_t NF_ACCEPT_V = 1;
constexpr uint32_t NF_REPEAT_V = 4;

struct QueueOptions {
  uint16_t queueNum = 0;
  uint32_t copyRange = 256;
  uint32_t maxLen = 4096;
  uint32_t rcvBuf = 8u << 20;
  uint32_t batchSize = 256;
  bool gso = true;
  bool failOpen = true;
  uint32_t failVerdict = NF_REPEAT_V;
  uint32_t markValue = 0x1;
  uint32_t markMask = 0x1;
  // For tests only: offer just this many bytes of each receive slot to the
  // kernel (0: the whole slot), so that messages arrive cut short.
  uint32_t recvBytes = 0;
};

// What a packet message says about its packet, read attribute by attribute
// without trusting the message to be whole.
struct MsgFacts {
  bool haveId = false;
  uint32_t id = 0;
  // True when the mark below is the packet's: the attribute was read, or
  // every attribute was (the kernel leaves it out when the mark is 0), or
  // only the payload, which comes last, was cut.
  bool markKnown = false;
  uint32_t mark = 0;
  // Type of the attribute the end of the received bytes cut, or -1.
  int cutType = -1;
  // Its length as the kernel wrote it (for the payload: bytes copied).
  uint32_t cutLen = 0;
};

class NfqSocket {
 public:
  explicit NfqSocket(const QueueOptions& opts);
  ~NfqSocket();
  NfqSocket(const NfqSocket&) = delete;
  NfqSocket& operator=(const NfqSocket&) = delete;

  // Opens, binds and configures the queue. On failure returns false and sets
  // error(); nothing stays bound. Non-fatal config refusals go to warnings().
  bool Open();
  // Unbinds and closes. Packets still in the kernel queue are dropped by the
  // kernel on unbind, so callers drain first.
  void Close();

  int fd() const;
  bool isOpen() const { return nl_ != nullptr; }
  const std::string& error() const { return error_; }
  const std::vector<std::string>& warnings() const { return warnings_; }

  // Reads up to batchSize queued packets without blocking, fills the metadata
  // columns and presets every verdict to VERDICT_UNSET. Returns the count.
  uint32_t RecvBatch();
  // Like RecvBatch, but blocks until at least one packet or the receive
  // timeout (SetRecvTimeout); one recvmmsg(MSG_WAITFORONE) per batch.
  uint32_t RecvBatchBlocking();
  // Adds what is queued now to the batch, without blocking, after its first
  // `from` packets (whose bytes and columns stay as they are) and into the
  // receive slots the batch has not used. Returns the new packet count.
  uint32_t RecvMore(uint32_t from);
  void SetRecvTimeout(int ms);
  // Sends the verdicts of packets from..to-1 of the batch, one netlink
  // message per packet (so each keeps its own mark) packed into as few
  // sendto() calls as fit.
  void SendVerdicts(uint32_t to, uint32_t from = 0);
  // Gives packets from..to-1 the failure verdict and sends them.
  void FailBatch(uint32_t to, uint32_t from = 0);

  uint8_t* packetBuffer() { return pkt_.data(); }
  size_t packetBufferSize() const { return pkt_.size(); }
  uint32_t* meta() { return meta_.data(); }
  size_t metaBytes() const { return meta_.size() * sizeof(uint32_t); }
  uint32_t batchSize() const { return opts_.batchSize; }
  uint32_t maxLen() const { return opts_.maxLen; }
  uint32_t slotSize() const { return slotSize_; }

  // Counters live in memory owned by the caller (a JS typed array).
  void SetCounters(double* c) { counters_ = c ? c : localCounters_; }
  double* counters() { return counters_; }
  // Benchmarks: note when each blocking receive returned (CLOCK_MONOTONIC ns).
  void SetStampWake(bool on) { stampWake_ = on; }
  uint64_t wokeAtNs() const { return wokeAtNs_; }

 private:
  bool Configure();
  bool SendConfigAndWaitAcks(char* buf, size_t len, uint32_t firstSeq, uint32_t count);
  uint32_t Receive(int flags, uint32_t fromPacket, uint32_t fromSlot);
  void ParseDatagram(uint8_t* base, size_t len, bool cut, uint32_t& n, uint32_t sec, uint32_t nsec);
  void ParseCutMsg(nlmsghdr* nlh, size_t avail, uint32_t& n, uint32_t sec, uint32_t nsec);
  bool ParsePacketMsg(const nlmsghdr* nlh, uint8_t* base, uint32_t slot, uint32_t sec, uint32_t nsec, uint32_t origLen = 0);
  void SendFailVerdictNow(uint32_t id, uint32_t mark, bool markKnown = true);
  void FailUnparsed(const nlmsghdr* nlh, size_t avail);
  void Flush(char* buf, size_t len);
  uint32_t col(Field f, uint32_t i) const { return f * opts_.batchSize + i; }

  QueueOptions opts_;
  mnl_socket* nl_ = nullptr;
  uint32_t portId_ = 0;
  uint32_t slotSize_;
  std::vector<uint8_t> pkt_;
  std::vector<uint32_t> meta_;
  std::vector<char> sendBuf_;
  std::vector<mmsghdr> msgs_;
  std::vector<iovec> iovs_;
  double localCounters_[C_COUNTER_COUNT] = {0};
  double* counters_ = localCounters_;
  // Receive slots the current batch has used.
  uint32_t slotsUsed_ = 0;
  bool stampWake_ = false;
  uint64_t wokeAtNs_ = 0;
  std::string error_;
  std::vector<std::string> warnings_;
};

}  // namespace nfips
