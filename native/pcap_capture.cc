#include "pcap_capture.h"

#include <errno.h>
#include <net/if.h>
#include <poll.h>
#include <string.h>
#include <time.h>

#include <pcap/pcap.h>

namespace nfips {

namespace {
// Short enough that a quiet link still hands over its last packets soon
// (TPACKET_V3 retires a block on this timeout), long enough to batch a busy one.
constexpr int kPcapTimeoutMs = 10;
constexpr uint32_t kStatsEveryNs = 1000000000u;
constexpr uint32_t kNflogSnaplen = 65535;
// Several devices: a device found empty at realtime T can only deliver
// frames stamped after T, less this much for a frame stamped before T that
// had not reached the ring yet (immediate mode: microseconds).
constexpr uint64_t kSkewNs = 1000000;
// NFLOG slots: room for the record's attributes before the payload, so a
// small snaplen still keeps that many payload bytes.
constexpr uint32_t kNflogHeaderRoom = 512;
// SLL2 packet type of a frame the host sent (linux/if_packet.h PACKET_OUTGOING).
constexpr uint8_t kPacketOutgoing = 4;

constexpr uint16_t kEthIPv4 = 0x0800;
constexpr uint16_t kEthIPv6 = 0x86dd;

// NFLOG TLV types (linux/netfilter/nfnetlink_log.h), numbered here so the
// addon does not need that header's other definitions.
constexpr uint16_t kNfulaMark = 2;
constexpr uint16_t kNfulaIndev = 4;
constexpr uint16_t kNfulaOutdev = 5;
constexpr uint16_t kNfulaHwaddr = 8;
constexpr uint16_t kNfulaPayload = 9;
constexpr uint16_t kNlaTypeMask = 0x3fff;

inline uint16_t Be16(const unsigned char* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t Be32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 | static_cast<uint32_t>(p[2]) << 8 | p[3];
}
inline bool IsVlanTag(uint16_t t) { return t == 0x8100 || t == 0x88a8 || t == 0x9100; }

uint64_t MonoNs(clockid_t c = CLOCK_MONOTONIC_COARSE) {
  timespec t;
  clock_gettime(c, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1000000000u + static_cast<uint64_t>(t.tv_nsec);
}

bool SupportedLink(int lt) {
  switch (lt) {
    case DLT_EN10MB:
    case DLT_LINUX_SLL:
    case DLT_LINUX_SLL2:
    case DLT_RAW:
    case DLT_IPV4:
    case DLT_IPV6:
    case DLT_NFLOG:
      return true;
    default:
      return false;
  }
}

// Where the link header of a frame ends: the L3 offset, its ethertype and
// the source MAC's offset (or NO_OFFSET). False when the frame ends first.
struct Link {
  uint32_t l3 = 0;
  uint16_t proto = 0;
  uint32_t hw = NO_OFFSET;
  uint32_t ifindex = 0;  // SLL2 names the interface of each frame
  bool outgoing = false;  // SLL2: sent by this host
};

bool ParseLink(int lt, const unsigned char* b, uint32_t cap, Link& out) {
  switch (lt) {
    case DLT_EN10MB:
      if (cap < 14) return false;
      out.l3 = 14;
      out.proto = Be16(b + 12);
      out.hw = 6;
      break;
    case DLT_LINUX_SLL:
      if (cap < 16) return false;
      out.l3 = 16;
      out.proto = Be16(b + 14);
      out.hw = Be16(b + 4) >= 6 ? 6 : NO_OFFSET;
      break;
    case DLT_LINUX_SLL2:
      if (cap < 20) return false;
      out.l3 = 20;
      out.proto = Be16(b);
      out.ifindex = Be32(b + 4);
      out.outgoing = b[10] == kPacketOutgoing;
      out.hw = b[11] >= 6 ? 12 : NO_OFFSET;
      break;
    default: {  // RAW, IPV4, IPV6: the IP header's version says which
      if (cap < 1) return false;
      uint8_t v = b[0] >> 4;
      out.l3 = 0;
      out.proto = v == 4 ? kEthIPv4 : v == 6 ? kEthIPv6 : 0;
      return true;
    }
  }
  // libpcap puts the tags the kernel took off back in the frame: strip
  // 802.1Q and QinQ so the decoder sees the IP header.
  while (IsVlanTag(out.proto)) {
    if (cap < out.l3 + 4) return false;
    out.proto = Be16(b + out.l3 + 2);
    out.l3 += 4;
  }
  return true;
}
}  // namespace

PcapCapture::PcapCapture(const CaptureOptions& opts) : opts_(opts) {
  bool anyNflog = false;
  for (const auto& name : opts_.devices) anyNflog = anyNflog || name.compare(0, 5, "nflog") == 0;
  slotSize_ = (opts_.snaplen + (anyNflog ? kNflogHeaderRoom : 0) + 63) & ~63u;
  pkt_.resize(static_cast<size_t>(slotSize_) * opts_.batchSize);
  meta_.resize(static_cast<size_t>(F_FIELD_COUNT) * opts_.batchSize);
  if (opts_.devices.size() > 1) {
    heldCap_ = 2 * opts_.batchSize;
    held_.resize(static_cast<size_t>(heldCap_) * opts_.devices.size());
    heldBytes_.resize(held_.size() * slotSize_);
  }
}

PcapCapture::~PcapCapture() { Close(); }

bool PcapCapture::Open() {
  error_.clear();
  failed_ = false;
  heldTotal_ = 0;
  warnings_.clear();
  dropsBase_ = counters_[C_CAPTURE_DROPS];
  ifDropsBase_ = counters_[C_CAPTURE_IF_DROPS];
  drops_ = ifDrops_ = overflow_ = 0;
  // Device entries are the callbacks' user pointers: they must not move.
  devs_.reserve(opts_.devices.size());
  pfds_.reserve(opts_.devices.size());
  for (const auto& name : opts_.devices) {
    if (!OpenOne(name)) {
      Close();
      return false;
    }
  }
  statsAtNs_ = MonoNs();
  return true;
}

bool PcapCapture::OpenOne(const std::string& name) {
  char errbuf[PCAP_ERRBUF_SIZE] = {0};
  pcap_t* p = pcap_create(name.c_str(), errbuf);
  if (!p) {
    error_ = name + ": " + errbuf;
    return false;
  }
  auto fail = [&](const std::string& what) {
    error_ = name + ": " + what;
    pcap_close(p);
    return false;
  };
  // libpcap reads an nflog socket into a buffer of 128 bytes plus the
  // snaplen, but the kernel may pack several records in one datagram: with
  // a short snaplen the rest is cut and garbled. Ask for whole records
  // there; each slot still keeps the first snaplen bytes.
  const bool nflog = name.compare(0, 5, "nflog") == 0;
  pcap_set_snaplen(p, static_cast<int>(nflog && opts_.snaplen < kNflogSnaplen ? kNflogSnaplen : opts_.snaplen));
  pcap_set_promisc(p, opts_.promisc ? 1 : 0);
  pcap_set_timeout(p, kPcapTimeoutMs);
  // Several devices are merged in timestamp order: each must hand its frames
  // over at once, not when its ring's block timer retires a block.
  if (heldCap_) pcap_set_immediate_mode(p, 1);
  if (opts_.bufferBytes) pcap_set_buffer_size(p, static_cast<int>(opts_.bufferBytes));
  // Not every device has nanosecond stamps (nflog): microseconds then.
  pcap_set_tstamp_precision(p, PCAP_TSTAMP_PRECISION_NANO);
  int rc = pcap_activate(p);
  if (rc < 0) {
    std::string detail = pcap_geterr(p);
    std::string status = pcap_statustostr(rc);
    // libpcap often repeats the status as the detail: say it once.
    if (detail.empty() || detail == status) return fail(status);
    return fail(rc == PCAP_ERROR ? detail : status + " (" + detail + ")");
  }
  if (rc > 0) warnings_.push_back(name + ": " + pcap_statustostr(rc) + " (" + pcap_geterr(p) + ")");
  int lt = pcap_datalink(p);
  // "any" speaks LINUX_SLL by default; SLL2 names each frame's interface.
  if (lt == DLT_LINUX_SLL && pcap_set_datalink(p, DLT_LINUX_SLL2) == 0) lt = DLT_LINUX_SLL2;
  if (!SupportedLink(lt)) {
    const char* ltName = pcap_datalink_val_to_name(lt);
    return fail(std::string("link type ") + (ltName ? ltName : std::to_string(lt)) + " is not supported");
  }
  const std::string& filter = lt != DLT_EN10MB && opts_.hasFilterNonEthernet ? opts_.filterNonEthernet : opts_.filter;
  if (lt == DLT_NFLOG && !filter.empty()) {
    // pcap_compile refuses every expression on NFLOG; the iptables rule
    // that copies the packets is this device's selector.
    warnings_.push_back("--filter does not apply to " + name + ": libpcap cannot filter NFLOG records; the iptables NFLOG rule selects them");
  } else if (!filter.empty()) {
    bpf_program prog;
    if (pcap_compile(p, &prog, filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) < 0) {
      return fail(std::string("bad filter \"") + filter + "\": " + pcap_geterr(p));
    }
    int sr = pcap_setfilter(p, &prog);
    pcap_freecode(&prog);
    if (sr < 0) return fail(std::string("cannot set filter: ") + pcap_geterr(p));
  }
  if (opts_.inboundOnly && lt != DLT_NFLOG && pcap_setdirection(p, PCAP_D_IN) < 0) {
    return fail(std::string("cannot capture inbound only: ") + pcap_geterr(p));
  }
  if (pcap_setnonblock(p, 1, errbuf) < 0) return fail(std::string("cannot set nonblocking mode: ") + errbuf);
  int fd = pcap_get_selectable_fd(p);
  if (fd < 0) return fail("no selectable file descriptor");
  Device d;
  d.owner = this;
  d.handle = p;
  d.name = name;
  d.linkType = lt;
  d.fd = fd;
  d.ifindex = if_nametoindex(name.c_str());  // 0 for "any" and nflog:N
  d.nanos = pcap_get_tstamp_precision(p) == PCAP_TSTAMP_PRECISION_NANO;
  d.buffered = false;
  d.nflog = lt == DLT_NFLOG;
  d.lastDrop = d.lastIfDrop = 0;
  d.lastNs = d.markNs = 0;
  d.heldBase = devs_.size() * heldCap_;
  d.heldHead = 0;
  d.heldCount = 0;
  devs_.push_back(d);
  pfds_.push_back(pollfd{fd, POLLIN, 0});
  if (lt == DLT_NFLOG) nflogCount_++;
  return true;
}

void PcapCapture::Close() {
  if (devs_.empty()) return;
  RefreshStats(true);
  // Frames held for the order that never reached a batch are lost.
  overflow_ += heldTotal_;
  PublishDrops();
  for (auto& d : devs_) pcap_close(d.handle);
  devs_.clear();
  pfds_.clear();
  nflogCount_ = 0;
  heldTotal_ = 0;
}

void PcapCapture::RefreshStats(bool force) {
  uint64_t now = MonoNs();
  if (!force && now - statsAtNs_ < kStatsEveryNs) return;
  statsAtNs_ = now;
  for (auto& d : devs_) {
    pcap_stat st;
    if (pcap_stats(d.handle, &st) == 0) {
      // Unsigned 32-bit differences stay right across a wrap.
      drops_ += static_cast<uint32_t>(st.ps_drop - d.lastDrop);
      ifDrops_ += static_cast<uint32_t>(st.ps_ifdrop - d.lastIfDrop);
      d.lastDrop = st.ps_drop;
      d.lastIfDrop = st.ps_ifdrop;
    }
  }
  PublishDrops();
}

void PcapCapture::PublishDrops() {
  counters_[C_CAPTURE_DROPS] = dropsBase_ + drops_ + overflow_;
  counters_[C_CAPTURE_IF_DROPS] = ifDropsBase_ + ifDrops_;
}

bool PcapCapture::Wait(int timeoutMs) {
  if (heldTotal_) {
    int64_t left = static_cast<int64_t>(releaseAtNs_) - static_cast<int64_t>(MonoNs(CLOCK_REALTIME));
    if (left <= 0) return true;
    int ms = static_cast<int>((left + 999999) / 1000000);
    if (ms < timeoutMs) timeoutMs = ms;
    for (auto& f : gatePfds_) f.revents = 0;
    // With no device to watch, this only sleeps until the release time.
    poll(gatePfds_.data(), gatePfds_.size(), timeoutMs);
    return true;
  }
  for (auto& f : pfds_) f.revents = 0;
  return poll(pfds_.data(), pfds_.size(), timeoutMs) > 0;
}

// One read of device k, into the batch or (held) its hold ring: the frames
// read, or -1 when the device failed (error() names it).
int PcapCapture::Dispatch(size_t k, int want, bool held) {
  Device& d = devs_[k];
  const bool nflog = d.linkType == DLT_NFLOG;
  const bool readable = (pfds_[k].revents & POLLIN) != 0;
  if (nflog) {
    // libpcap keeps the records of a datagram that did not fit in the
    // batch: read those even when the socket itself is empty.
    if (!readable && !d.buffered) return 0;
    pfds_[k].revents = 0;  // one receive per poll
  }
  int r = pcap_dispatch(d.handle, want, held ? &PcapCapture::OnPacketHeld : &PcapCapture::OnPacket, reinterpret_cast<unsigned char*>(&d));
  if (nflog) d.buffered = r == want;
  if (r == PCAP_ERROR && (!nflog || readable)) {
    // A deleted or downed interface: the socket stays bound to the old
    // index forever, so the capture stops and is opened again by name.
    counters_[C_RECV_ERRORS] += 1;
    error_ = d.name + ": " + pcap_geterr(d.handle);
    failed_ = true;
    return -1;
  }
  return r > 0 ? r : 0;
}

uint32_t PcapCapture::Fill() {
  n_ = 0;
  if (failed_) return 0;  // what was read before the failure went out in the last batch
  const uint32_t cap = opts_.batchSize;
  // libpcap's nflog reader fails with EAGAIN on an empty nonblocking socket
  // (where a ring just returns 0): those devices are read only when poll
  // says they hold something.
  if (nflogCount_) {
    for (auto& f : pfds_) f.revents = 0;
    poll(pfds_.data(), pfds_.size(), 0);
  }
  if (heldCap_) {
    FillMerged();
  } else {
    // One device, the fast path: straight into the batch.
    while (n_ < cap) {
      int r = Dispatch(0, static_cast<int>(cap - n_), false);
      if (r <= 0) break;
    }
  }
  uint32_t* verdict = meta_.data() + col(F_VERDICT, 0);
  for (uint32_t i = 0; i < n_; i++) verdict[i] = VERDICT_UNSET;
  if (n_) {
    counters_[C_RECEIVED] += n_;
    counters_[C_BATCHES] += 1;
    if (n_ > counters_[C_MAX_BATCH]) counters_[C_MAX_BATCH] = n_;
  }
  return n_;
}

// Several devices: read what each has into its hold ring, then move frames
// into the batch oldest first, up to the watermark: the oldest stamp any
// device could still deliver. A device read dry at realtime T delivers
// nothing stamped before T - kSkewNs; one that still has frames waiting,
// nothing older than the newest frame it gave. NFLOG devices do not count:
// the kernel batches their records for up to a second (nfnetlink_log's
// flush timer), so they can be that late and their order cannot be kept.
uint32_t PcapCapture::FillMerged() {
  const uint32_t cap = opts_.batchSize;
  const uint64_t roundNs = MonoNs(CLOCK_REALTIME);
  const uint64_t fresh = roundNs > kSkewNs ? roundNs - kSkewNs : 0;
  bool failed = false;
  for (size_t k = 0; k < devs_.size() && !failed; k++) {
    Device& d = devs_[k];
    uint32_t room = heldCap_ - d.heldCount;
    int r = room ? Dispatch(k, static_cast<int>(room), true) : 0;
    if (r < 0) failed = true;
    else if (room && static_cast<uint32_t>(r) < room && fresh > d.markNs) d.markNs = fresh;
    if (d.lastNs > d.markNs) d.markNs = d.lastNs;
  }
  uint64_t limit = UINT64_MAX;
  if (!failed) {  // after a failure the rest goes out as it is
    bool ringFull = false;
    for (const auto& d : devs_) {
      if (!d.nflog && d.markNs < limit) limit = d.markNs;
      ringFull = ringFull || d.heldCount == heldCap_;
    }
    // A part batch at most every kSkewNs: a busy device read again right
    // after a batch would otherwise release only the few frames that aged
    // meanwhile, and the per-batch cost would take the thread's time.
    if (heldTotal_ < cap && !ringFull && roundNs < nextReleaseNs_) limit = 0;
  }
  while (n_ < cap && heldTotal_) {
    Device* best = nullptr;
    for (auto& d : devs_) {
      if (d.heldCount && (!best || held_[d.heldBase + d.heldHead].sortNs < held_[best->heldBase + best->heldHead].sortNs)) best = &d;
    }
    const Held& h = held_[best->heldBase + best->heldHead];
    if (h.sortNs > limit) break;
    pcap_pkthdr ph;
    ph.caplen = h.caplen;
    ph.len = h.len;
    ph.ts.tv_sec = static_cast<time_t>(h.tsSec);
    ph.ts.tv_usec = static_cast<suseconds_t>(h.tsFrac);
    Take(*best, &ph, heldBytes_.data() + (best->heldBase + best->heldHead) * slotSize_);
    best->heldHead = (best->heldHead + 1) % heldCap_;
    best->heldCount--;
    heldTotal_--;
  }
  if (n_) nextReleaseNs_ = n_ < cap ? roundNs + kSkewNs : 0;
  // What Wait watches while frames are held: the devices whose watermark
  // keeps the oldest back, until it passes on its own.
  gatePfds_.clear();
  if (heldTotal_) {
    uint64_t oldest = UINT64_MAX;
    for (const auto& d : devs_) {
      if (d.heldCount && held_[d.heldBase + d.heldHead].sortNs < oldest) oldest = held_[d.heldBase + d.heldHead].sortNs;
    }
    releaseAtNs_ = oldest + kSkewNs > nextReleaseNs_ ? oldest + kSkewNs : nextReleaseNs_;
    for (size_t k = 0; k < devs_.size(); k++) {
      if (!devs_[k].nflog && devs_[k].markNs < oldest) gatePfds_.push_back(pollfd{devs_[k].fd, POLLIN, 0});
    }
  }
  return n_;
}

void PcapCapture::OnPacketHeld(unsigned char* user, const pcap_pkthdr* h, const unsigned char* bytes) {
  auto* d = reinterpret_cast<Device*>(user);
  PcapCapture* c = d->owner;
  if (d->heldCount >= c->heldCap_) {  // never asked for more than the room
    c->overflow_ += 1;
    return;
  }
  size_t at = d->heldBase + (d->heldHead + d->heldCount) % c->heldCap_;
  Held& e = c->held_[at];
  e.caplen = h->caplen < c->slotSize_ ? h->caplen : c->slotSize_;
  e.len = h->len;
  e.tsSec = h->ts.tv_sec;
  e.tsFrac = h->ts.tv_usec;
  e.sortNs = static_cast<uint64_t>(h->ts.tv_sec) * 1000000000u + static_cast<uint64_t>(d->nanos ? h->ts.tv_usec : h->ts.tv_usec * 1000);
  if (e.sortNs > d->lastNs) d->lastNs = e.sortNs;
  memcpy(c->heldBytes_.data() + at * c->slotSize_, bytes, e.caplen);
  d->heldCount++;
  c->heldTotal_++;
}

void PcapCapture::OnPacket(unsigned char* user, const pcap_pkthdr* h, const unsigned char* bytes) {
  auto* d = reinterpret_cast<Device*>(user);
  d->owner->Take(*d, h, bytes);
}

void PcapCapture::Take(const Device& d, const pcap_pkthdr* h, const unsigned char* bytes) {
  // pcap_dispatch hands over at most the room asked for; should a reader
  // ever pass more, those frames are counted as dropped, never written past the batch.
  if (n_ >= opts_.batchSize) {
    overflow_ += 1;
    return;
  }
  uint32_t capLen = h->caplen < slotSize_ ? h->caplen : slotSize_;
  uint32_t i = n_;
  uint8_t* slot = pkt_.data() + static_cast<size_t>(i) * slotSize_;
  uint32_t* m = meta_.data();
  if (d.linkType == DLT_NFLOG) {
    memcpy(slot, bytes, capLen);
    if (!TakeNflog(d, h, slot, capLen)) {
      counters_[C_CAPTURE_SKIPPED] += 1;
      return;
    }
  } else {
    Link l;
    if (!ParseLink(d.linkType, bytes, capLen, l)) {
      counters_[C_CAPTURE_SKIPPED] += 1;
      return;
    }
    // "any" inbound only: the kernel's direction filter may pass the copies the host sent.
    if (l.outgoing && opts_.inboundOnly) return;
    if ((l.proto != kEthIPv4 && l.proto != kEthIPv6) || capLen <= l.l3) {
      counters_[C_CAPTURE_SKIPPED] += 1;
      return;
    }
    memcpy(slot, bytes, capLen);
    uint32_t base = i * slotSize_;
    m[col(F_HW_PROTO, i)] = l.proto;
    m[col(F_IN_IFINDEX, i)] = l.ifindex ? l.ifindex : d.ifindex;
    m[col(F_OUT_IFINDEX, i)] = 0;
    m[col(F_MARK, i)] = 0;
    m[col(F_ORIG_LEN, i)] = h->len > l.l3 ? h->len - l.l3 : 0;
    m[col(F_CAP_LEN, i)] = capLen - l.l3;
    m[col(F_OFFSET, i)] = base + l.l3;
    m[col(F_HWADDR_OFF, i)] = l.hw == NO_OFFSET || l.hw + 6 > capLen ? NO_OFFSET : base + l.hw;
  }
  m[col(F_ID, i)] = seq_++;
  m[col(F_HOOK, i)] = 0;
  m[col(F_TS_SEC, i)] = static_cast<uint32_t>(h->ts.tv_sec);
  m[col(F_TS_NSEC, i)] = static_cast<uint32_t>(d.nanos ? h->ts.tv_usec : h->ts.tv_usec * 1000);
  n_++;
}

// An NFLOG record: a 4-byte header (family, version, group), then netlink
// attributes whose length and type are in host order and values in network
// order. The payload attribute holds the IP packet.
bool PcapCapture::TakeNflog(const Device& d, const pcap_pkthdr* h, const unsigned char* b, uint32_t cap) {
  (void)d;
  (void)h;
  uint32_t i = n_;
  uint32_t base = i * slotSize_;
  uint32_t* m = meta_.data();
  uint32_t payloadAt = NO_OFFSET, payloadLen = 0, hw = NO_OFFSET, in = 0, out = 0, mark = 0;
  if (cap < 4 || b[1] != 0) return false;  // not an NFNETLINK_V0 record
  uint32_t off = 4;
  while (off + 4 <= cap) {
    uint16_t len, type;
    memcpy(&len, b + off, 2);
    memcpy(&type, b + off + 2, 2);
    type &= kNlaTypeMask;
    if (len < 4) break;
    uint32_t vlen = len - 4u;
    const unsigned char* v = b + off + 4;
    bool whole = off + len <= cap;
    if (type == kNfulaPayload) {
      // A payload cut by the snaplen keeps what arrived.
      payloadAt = off + 4;
      payloadLen = whole ? vlen : cap - payloadAt;
      // The slot has room for the attributes: keep snaplen payload bytes.
      if (payloadLen > opts_.snaplen) payloadLen = opts_.snaplen;
    } else if (whole && vlen >= 4 && type == kNfulaIndev) {
      in = Be32(v);
    } else if (whole && vlen >= 4 && type == kNfulaOutdev) {
      out = Be32(v);
    } else if (whole && vlen >= 4 && type == kNfulaMark) {
      mark = Be32(v);
    } else if (whole && vlen >= 4 + 6 && type == kNfulaHwaddr && Be16(v) >= 6) {
      hw = off + 4 + 4;
    }
    if (!whole) break;
    off += (len + 3u) & ~3u;
  }
  if (payloadAt == NO_OFFSET || payloadLen == 0) return false;
  uint8_t ver = b[payloadAt] >> 4;
  if (ver != 4 && ver != 6) return false;
  // NFLOG copies the whole packet unless --nflog-size cut it: the IP header
  // says how long it was on the wire.
  uint32_t wire = payloadLen;
  if (ver == 4 && payloadLen >= 4) {
    uint32_t t = Be16(b + payloadAt + 2);
    if (t > wire) wire = t;
  } else if (ver == 6 && payloadLen >= 6) {
    uint32_t t = Be16(b + payloadAt + 4) + 40u;
    if (t > wire) wire = t;
  }
  m[col(F_HW_PROTO, i)] = ver == 4 ? kEthIPv4 : kEthIPv6;
  m[col(F_IN_IFINDEX, i)] = in;
  m[col(F_OUT_IFINDEX, i)] = out;
  m[col(F_MARK, i)] = mark;
  m[col(F_ORIG_LEN, i)] = wire;
  m[col(F_CAP_LEN, i)] = payloadLen;
  m[col(F_OFFSET, i)] = base + payloadAt;
  m[col(F_HWADDR_OFF, i)] = hw == NO_OFFSET ? NO_OFFSET : base + hw;
  return true;
}

}  // namespace nfips
