// A passive capture source: one or more libpcap handles (interfaces or
// nflog:GROUP devices) read into the batch layout of NfqSocket, so the same
// verdict engine runs on a mirror port. No N-API in here: the addon wraps it.
// Nothing is ever answered or dropped: a capture only watches. Several
// devices are merged in timestamp order (each in immediate mode); one device
// is read straight into the batch.
#pragma once

#include <poll.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "nfq_socket.h"

struct pcap;
struct pcap_pkthdr;

namespace nfips {

// Capture counters, appended after the queue's (Counter) in the same shared
// array, so both kinds of thread report one list (src/queue/native.ts).
enum CaptureCounter : uint32_t {
  C_CAPTURE_DROPS = C_COUNTER_COUNT,  // pcap_stats ps_drop summed over devices, plus held frames discarded at a failure or close
  C_CAPTURE_IF_DROPS,                 // pcap_stats ps_ifdrop summed over devices
  C_CAPTURE_SKIPPED,                  // frames neither IPv4 nor IPv6, or cut before their L3 header
  C_ALL_COUNTER_COUNT
};

struct CaptureOptions {
  std::vector<std::string> devices;
  uint32_t snaplen = 2048;
  uint32_t bufferBytes = 32u << 20;
  std::string filter;
  // For devices whose link type is not Ethernet (where `vlan` does not compile); `filter` when unset.
  std::string filterNonEthernet;
  bool hasFilterNonEthernet = false;
  uint32_t batchSize = 256;
  bool promisc = false;
  // Only frames the interface received (PCAP_D_IN): a forwarding box then
  // sees each forwarded packet once, on its way in, not again on its way out.
  bool inboundOnly = false;
};

class PcapCapture {
 public:
  explicit PcapCapture(const CaptureOptions& opts);
  ~PcapCapture();
  PcapCapture(const PcapCapture&) = delete;
  PcapCapture& operator=(const PcapCapture&) = delete;

  // Opens every device; on failure returns false, sets error() (naming the
  // device and libpcap's message) and leaves nothing open.
  bool Open();
  // Reads the drop counters a last time and closes every handle.
  void Close();
  bool isOpen() const { return !devs_.empty(); }
  const std::string& error() const { return error_; }
  // A device failed while reading (deleted, down): error() names it; the
  // capture must be closed and opened again.
  bool failed() const { return failed_; }
  // Frames read but held back for the cross-device order.
  bool holding() const { return heldTotal_ != 0; }
  const std::vector<std::string>& warnings() const { return warnings_; }

  // Fills the batch with what the devices hold now, without blocking.
  uint32_t Fill();
  // Waits up to timeoutMs for a device to become readable; false on timeout.
  // While frames are held, waits only for the devices that keep them back,
  // and no longer than until the oldest may go.
  bool Wait(int timeoutMs);
  // Refreshes the drop counters when the last refresh is older than a second (or always).
  void RefreshStats(bool force);

  uint8_t* packetBuffer() { return pkt_.data(); }
  size_t packetBufferSize() const { return pkt_.size(); }
  uint32_t* meta() { return meta_.data(); }
  size_t metaBytes() const { return meta_.size() * sizeof(uint32_t); }
  uint32_t batchSize() const { return opts_.batchSize; }

  void SetCounters(double* c) { counters_ = c ? c : localCounters_; }
  double* counters() { return counters_; }

 private:
  struct Device {
    PcapCapture* owner;
    pcap* handle;
    std::string name;
    int linkType;
    int fd;
    uint32_t ifindex;
    bool nanos;     // timestamps in ns (else us)
    bool buffered;  // nflog: the last read filled the batch, libpcap may hold more
    bool nflog;     // DLT_NFLOG: never holds back the merge (its records come up to 1 s late)
    uint32_t lastDrop;    // ps_drop / ps_ifdrop at the last refresh (32-bit in libpcap, they wrap)
    uint32_t lastIfDrop;
    uint64_t lastNs;      // the newest timestamp read from it (ns)
    uint64_t markNs;      // merge: frames it delivers from now on are stamped at or after this
    // Several devices: frames read but not yet in a batch, a ring of
    // heldCap_ entries starting at heldBase_ in held_ and heldBytes_.
    size_t heldBase;
    uint32_t heldHead;
    uint32_t heldCount;
  };
  struct Held {
    uint32_t caplen;
    uint32_t len;
    int64_t tsSec;
    int64_t tsFrac;    // us or ns, as the device stamps
    uint64_t sortNs;   // the timestamp in ns, for the merge
  };
  static void OnPacketHeld(unsigned char* user, const pcap_pkthdr* h, const unsigned char* bytes);
  int Dispatch(size_t k, int want, bool held);
  uint32_t FillMerged();
  void PublishDrops();
  static void OnPacket(unsigned char* user, const pcap_pkthdr* h, const unsigned char* bytes);
  void Take(const Device& d, const pcap_pkthdr* h, const unsigned char* bytes);
  bool TakeNflog(const Device& d, const pcap_pkthdr* h, const unsigned char* bytes, uint32_t slot);
  bool OpenOne(const std::string& name);
  uint32_t col(Field f, uint32_t i) const { return f * opts_.batchSize + i; }

  CaptureOptions opts_;
  uint32_t slotSize_;
  std::vector<uint8_t> pkt_;
  std::vector<uint32_t> meta_;
  std::vector<Device> devs_;
  std::vector<pollfd> pfds_;
  uint32_t nflogCount_ = 0;
  double overflow_ = 0;
  // Drop counters are shared with the capture a restart replaces: this one
  // adds to what they held when it opened, so they never go backwards.
  double dropsBase_ = 0;
  double ifDropsBase_ = 0;
  double drops_ = 0;
  double ifDrops_ = 0;
  uint32_t n_ = 0;
  uint32_t seq_ = 0;
  uint64_t statsAtNs_ = 0;
  double localCounters_[C_ALL_COUNTER_COUNT] = {0};
  double* counters_ = localCounters_;
  std::string error_;
  bool failed_ = false;
  std::vector<std::string> warnings_;
  uint32_t heldCap_ = 0;
  uint32_t heldTotal_ = 0;
  uint64_t releaseAtNs_ = 0;         // realtime at which the oldest held frame may go
  uint64_t nextReleaseNs_ = 0;       // realtime before which no part batch is released
  std::vector<pollfd> gatePfds_;     // the devices holding it back
  std::vector<Held> held_;
  std::vector<uint8_t> heldBytes_;
};

}  // namespace nfips
