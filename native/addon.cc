// N-API wrapper: a Queue object per NFQUEUE queue, each in its own
// worker_thread, which lives inside run(): receive a batch, call JS to fill
// the verdict columns, send the verdicts, call JS again for the side work.
#include <napi.h>
#include <time.h>

#include <memory>

#include "nfq_socket.h"
#include "pcap_capture.h"

namespace nfips {

namespace {
// Where a timed batch spends its time (the stageTimes option), in the order
// of src/queue/native.ts STAGE_TIMES.
enum Stage : uint32_t {
  S_BATCHES = 0,  // batches timed (those with packets)
  S_PACKETS,
  S_EXTRA,   // receives that added to an open batch (RecvMore)
  S_RECV,    // ns from recvmmsg's return to the batch parsed, plus RecvMore
  S_DECIDE,  // ns in the decide calls (N-API call and JS)
  S_SEND,    // ns sending the verdicts (kernel reinjection included)
  S_AFTER,   // ns in the afterVerdicts call
  S_TURN,    // ns from the end of a batch to waiting for the next
  S_COUNT
};

// Per-batch samples after the totals: recv, decide, send, after, turn (ns).
constexpr uint32_t kSampleFields = 5;

uint32_t U32Opt(const Napi::Object& o, const char* key, uint32_t def) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().Uint32Value() : def;
}
bool BoolOpt(const Napi::Object& o, const char* key, bool def) {
  Napi::Value v = o.Get(key);
  return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : def;
}

// A JS view over native memory that never moves. The buffer co-owns the
// object holding it, so a view kept past its wrapper never dangles.
template <typename T>
Napi::ArrayBuffer ExternalBuffer(Napi::Env env, const std::shared_ptr<T>& holder, void* data, size_t len) {
  auto* owner = new std::shared_ptr<T>(holder);
  return Napi::ArrayBuffer::New(
      env, data, len, [](Napi::Env, void*, std::shared_ptr<T>* o) { delete o; }, owner);
}

// options.counters as a Float64Array of at least minLen, or null when not
// given; a short array throws a RangeError naming the class (ok = false).
double* AttachCounters(Napi::Env env, const Napi::Object& o, const char* cls, size_t minLen, Napi::ObjectReference& ref, bool& ok) {
  ok = true;
  Napi::Value counters = o.Get("counters");
  if (!counters.IsTypedArray() || counters.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) return nullptr;
  Napi::Float64Array arr = counters.As<Napi::Float64Array>();
  if (arr.ElementLength() < minLen) {
    Napi::RangeError::New(env, std::string(cls) + ": counters array too short").ThrowAsJavaScriptException();
    ok = false;
    return nullptr;
  }
  ref = Napi::Persistent(counters.As<Napi::Object>());
  return arr.Data();
}

// run(decide, flag: Int32Array, timeoutMs[, afterVerdicts])'s arguments,
// checked, on an open source; ok = false with an error thrown when the
// source is closed (the Error says `closed`) or they do not fit.
struct RunArgs {
  bool ok = false;
  volatile int32_t* flag = nullptr;
  int timeoutMs = 0;
  napi_value after = nullptr;
};
RunArgs ParseRunArgs(const Napi::CallbackInfo& info, bool open, const char* closed) {
  Napi::Env env = info.Env();
  RunArgs a;
  if (!open) {
    Napi::Error::New(env, closed).ThrowAsJavaScriptException();
    return a;
  }
  if (info.Length() < 3 || !info[0].IsFunction() || !info[1].IsTypedArray() || !info[2].IsNumber()) {
    Napi::TypeError::New(env, "run(decide, flag: Int32Array, timeoutMs[, afterVerdicts])").ThrowAsJavaScriptException();
    return a;
  }
  Napi::TypedArray ta = info[1].As<Napi::TypedArray>();
  if (ta.TypedArrayType() != napi_int32_array || ta.ElementLength() < 1) {
    Napi::TypeError::New(env, "run: flag must be an Int32Array").ThrowAsJavaScriptException();
    return a;
  }
  a.flag = reinterpret_cast<volatile int32_t*>(ta.As<Napi::Int32Array>().Data());
  a.timeoutMs = info[2].As<Napi::Number>().Int32Value();
  if (info.Length() >= 4 && info[3].IsFunction()) a.after = info[3];
  a.ok = true;
  return a;
}

// Shuts a wrapper's source down with its env: a terminated worker thread
// may never finalise the object. Owner provides OnEnvShutdown().
template <typename Owner>
class EnvCleanup {
 public:
  void Hook(napi_env env, Owner* owner) {
    env_ = env;
    owner_ = owner;
    napi_add_env_cleanup_hook(env, &EnvCleanup::Fire, this);
    hooked_ = true;
  }
  ~EnvCleanup() {
    if (hooked_) napi_remove_env_cleanup_hook(env_, &EnvCleanup::Fire, this);
  }

 private:
  static void Fire(void* arg) {
    auto* self = static_cast<EnvCleanup*>(arg);
    self->hooked_ = false;
    self->owner_->OnEnvShutdown();
  }
  napi_env env_ = nullptr;
  Owner* owner_ = nullptr;
  bool hooked_ = false;
};
}  // namespace

// What Queue and Capture share: the JS shape (run, close, warnings and the
// packets/meta/batchSize views of src_'s batch), the options argument, and
// the counters and buffer views every source attaches the same way.
template <typename Derived, typename Source>
class SourceWrap : public Napi::ObjectWrap<Derived> {
 public:
  static Napi::Function Define(Napi::Env env, const char* name) {
    using W = Napi::ObjectWrap<Derived>;
    return W::DefineClass(env, name,
                          {
                              W::InstanceMethod("run", &Derived::Run),
                              W::InstanceMethod("close", &Derived::Close),
                              W::InstanceMethod("warnings", &Derived::Warnings),
                              W::InstanceAccessor("packets", &Derived::PacketBuffer, nullptr),
                              W::InstanceAccessor("meta", &Derived::MetaBuffer, nullptr),
                              W::InstanceAccessor("batchSize", &Derived::BatchSize, nullptr),
                          });
  }

 protected:
  explicit SourceWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Derived>(info) {}

  // info[0] as the options object; false, with a TypeError thrown, when it is not one.
  static bool OptionsArg(const Napi::CallbackInfo& info, const char* cls, Napi::Object& out) {
    if (info.Length() < 1 || !info[0].IsObject()) {
      Napi::TypeError::New(info.Env(), std::string(cls) + "(options): options object required").ThrowAsJavaScriptException();
      return false;
    }
    out = info[0].As<Napi::Object>();
    return true;
  }

  // Once src_ exists: options.counters (at least minCounters long) and the
  // JS views of its batch. False when the counters were refused (thrown).
  bool Attach(Napi::Env env, const Napi::Object& o, const char* cls, size_t minCounters) {
    bool ok;
    double* counters = AttachCounters(env, o, cls, minCounters, countersRef_, ok);
    if (!ok) return false;
    if (counters) src_->SetCounters(counters);
    packets_ = Napi::Persistent(ExternalBuffer(env, src_, src_->packetBuffer(), src_->packetBufferSize()));
    meta_ = Napi::Persistent(ExternalBuffer(env, src_, src_->meta(), src_->metaBytes()));
    return true;
  }

  Napi::Value Warnings(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env);
    if (src_) {
      uint32_t i = 0;
      for (const auto& w : src_->warnings()) out.Set(i++, Napi::String::New(env, w));
    }
    return out;
  }
  Napi::Value PacketBuffer(const Napi::CallbackInfo&) { return packets_.Value(); }
  Napi::Value MetaBuffer(const Napi::CallbackInfo&) { return meta_.Value(); }
  Napi::Value BatchSize(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), src_ ? src_->batchSize() : 0);
  }

  std::shared_ptr<Source> src_;
  Napi::Reference<Napi::ArrayBuffer> packets_;
  Napi::Reference<Napi::ArrayBuffer> meta_;
  Napi::ObjectReference countersRef_;
};

class Queue : public SourceWrap<Queue, NfqSocket> {
  friend class SourceWrap<Queue, NfqSocket>;

 public:
  explicit Queue(const Napi::CallbackInfo& info) : SourceWrap(info) {
    Napi::Env env = info.Env();
    Napi::Object o;
    if (!OptionsArg(info, "Queue", o)) return;
    QueueOptions opts;
    opts.queueNum = static_cast<uint16_t>(U32Opt(o, "queue", 0));
    opts.copyRange = U32Opt(o, "copyRange", opts.copyRange);
    opts.maxLen = U32Opt(o, "maxLen", opts.maxLen);
    opts.rcvBuf = U32Opt(o, "rcvBuf", opts.rcvBuf);
    opts.batchSize = U32Opt(o, "batchSize", opts.batchSize);
    opts.gso = BoolOpt(o, "gso", opts.gso);
    opts.failOpen = BoolOpt(o, "failOpen", opts.failOpen);
    opts.failVerdict = U32Opt(o, "failVerdict", opts.failVerdict);
    opts.markValue = U32Opt(o, "markValue", opts.markValue);
    opts.markMask = U32Opt(o, "markMask", opts.markMask);
    opts.recvBytes = U32Opt(o, "recvBytes", opts.recvBytes);
    if (opts.batchSize == 0 || opts.batchSize > 4096 || opts.copyRange < 64 || opts.copyRange > 65535) {
      Napi::RangeError::New(env, "Queue: batchSize must be 1..4096 and copyRange 64..65535")
          .ThrowAsJavaScriptException();
      return;
    }
    // Below the packet header attribute no message could name its packet.
    if (opts.recvBytes != 0 && opts.recvBytes < 32) {
      Napi::RangeError::New(env, "Queue: recvBytes must be 0 (whole slots) or at least 32").ThrowAsJavaScriptException();
      return;
    }
    if (opts.failVerdict != NF_DROP_V && opts.failVerdict != NF_ACCEPT_V && opts.failVerdict != NF_REPEAT_V) {
      Napi::RangeError::New(env, "Queue: failVerdict must be NF_DROP, NF_ACCEPT or NF_REPEAT")
          .ThrowAsJavaScriptException();
      return;
    }
    src_ = std::make_shared<NfqSocket>(opts);

    if (!Attach(env, o, "Queue", C_COUNTER_COUNT)) return;
    Napi::Value stages = o.Get("stageTimes");
    if (stages.IsTypedArray() && stages.As<Napi::TypedArray>().TypedArrayType() == napi_float64_array) {
      Napi::Float64Array arr = stages.As<Napi::Float64Array>();
      if (arr.ElementLength() < S_COUNT) {
        Napi::RangeError::New(env, "Queue: stageTimes array too short").ThrowAsJavaScriptException();
        return;
      }
      stagesRef_ = Napi::Persistent(stages.As<Napi::Object>());
      stages_ = arr.Data();
      // Room past the totals keeps each batch's own times, for medians.
      sampleCap_ = static_cast<uint32_t>((arr.ElementLength() - S_COUNT) / kSampleFields);
      src_->SetStampWake(true);
    }

    if (!src_->Open()) {
      Napi::Error err = Napi::Error::New(env, "NFQUEUE " + std::to_string(opts.queueNum) + ": " + src_->error());
      err.ThrowAsJavaScriptException();
      return;
    }
    cleanup_.Hook(env, this);
  }

  ~Queue() override { Shutdown(false); }

  void OnEnvShutdown() { Shutdown(false); }

 private:
  // run(decide, flag, timeoutMs[, afterVerdicts]): the queue thread's loop,
  // in the shape of the C reference loop: block in recvmmsg, call JS inline,
  // send verdicts. decide(n, from) fills the verdicts of packets from..n-1
  // (the batch can grow while open). afterVerdicts(n) runs once the verdicts are on their way,
  // for side work (events, sessions, features) that must not delay them; the
  // batch's bytes and columns stay valid until the next receive.
  // Returns to JS when flag[0] != 0 (a control message is waiting), when the
  // JS side threw (so a terminating thread can unwind), or on close.
  Napi::Value Run(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RunArgs ra = ParseRunArgs(info, src_ && src_->isOpen(), "queue is closed");
    if (!ra.ok) return env.Undefined();
    volatile int32_t* flag = ra.flag;
    Napi::Function decide = info[0].As<Napi::Function>();
    // close() drains what is still queued through the same two calls.
    if (decide_.IsEmpty()) decide_ = Napi::Persistent(decide);
    napi_value after = ra.after;
    if (after && after_.IsEmpty()) after_ = Napi::Persistent(info[3].As<Napi::Function>());
    src_->SetRecvTimeout(ra.timeoutMs);
    napi_value self = Value();
    napi_value fn = decide;
    double* st = stages_;
    uint64_t turnFrom = 0;
    const uint32_t cap = src_->batchSize();
    while (src_->isOpen() && __atomic_load_n(flag, __ATOMIC_ACQUIRE) == 0) {
      Napi::HandleScope scope(env);
      uint64_t t0 = st ? NowNs() : 0;
      uint32_t n = src_->RecvBatchBlocking();
      uint64_t t1 = st ? NowNs() : 0;
      uint64_t recvNs = st ? t1 - src_->wokeAtNs() : 0;
      uint64_t decideNs = 0, sendNs = 0;
      uint32_t from = 0;
      uint32_t extra = 0;
      // Decide and answer what came, then whatever queued meanwhile (a reply
      // the verdicts just let through, more of a burst), into the rest of the
      // batch, before the side work of any of it: no packet waits behind
      // afterVerdicts while there is room. On a receive timeout, one empty
      // call lets a terminating thread unwind.
      for (;;) {
        napi_value args[2];
        napi_value result;
        napi_create_uint32(env, n, &args[0]);
        napi_create_uint32(env, from, &args[1]);
        // The raw call: node-addon-api would abort the process if the thread
        // is being terminated and the error cannot be thrown.
        napi_status status = napi_call_function(env, self, fn, 2, args, &result);
        if (status != napi_ok || env.IsExceptionPending()) {
          if (n > from) {
            src_->counters()[C_JS_ERRORS] += 1;
            src_->FailBatch(n, from);
          }
          // Earlier parts got their real verdicts: their side work (events,
          // sessions, windows) must not wait for the next batch or be lost.
          if (from > 0 && after && status == napi_pending_exception) AfterFailedPart(env, self, after, from);
          return env.Undefined();  // a pending exception propagates to run()'s caller
        }
        uint64_t t2 = st ? NowNs() : 0;
        if (n > from) src_->SendVerdicts(n, from);
        if (st) {
          uint64_t t3 = NowNs();
          decideNs += t2 - t1;
          sendNs += t3 - t2;
          t1 = t3;
        }
        if (n == 0 || n >= cap) break;
        uint32_t more = src_->RecvMore(n);
        if (more == n) break;
        from = n;
        n = more;
        extra++;
        if (st) {
          uint64_t t = NowNs();
          recvNs += t - t1;
          t1 = t;
        }
      }
      uint64_t t3 = st ? NowNs() : 0;
      recvNs += t3 - t1;  // the RecvMore that found nothing
      if (after) {
        napi_value arg;
        napi_value result;
        napi_create_uint32(env, n, &arg);
        napi_status status = napi_call_function(env, self, after, 1, &arg, &result);
        if (status != napi_ok || env.IsExceptionPending()) return env.Undefined();
      }
      if (st && n) {
        uint64_t t4 = NowNs();
        st[S_BATCHES] += 1;
        st[S_PACKETS] += n;
        st[S_EXTRA] += extra;
        st[S_RECV] += static_cast<double>(recvNs);
        st[S_DECIDE] += static_cast<double>(decideNs);
        st[S_SEND] += static_cast<double>(sendNs);
        st[S_AFTER] += static_cast<double>(t4 - t3);
        // From the end of the previous batch to waiting for this one.
        // The first batch of a run() call or after an idle timeout has no
        // previous batch to measure from: no turn, and no sample of one.
        const bool hasTurn = turnFrom != 0;
        uint64_t turn = hasTurn ? t0 - turnFrom : 0;
        st[S_TURN] += static_cast<double>(turn);
        turnFrom = t4;
        if (hasTurn && samples_ < sampleCap_) {
          double* s = st + S_COUNT + static_cast<size_t>(samples_++) * kSampleFields;
          s[0] = static_cast<double>(recvNs);
          s[1] = static_cast<double>(decideNs);
          s[2] = static_cast<double>(sendNs);
          s[3] = static_cast<double>(t4 - t3);
          s[4] = static_cast<double>(turn);
        }
      } else {
        turnFrom = 0;
      }
    }
    return env.Undefined();
  }

  // afterVerdicts(from) for the parts decided before a part threw. The
  // original error is put back after it, and an error of its own is dropped:
  // the caller hears of the first failure.
  static void AfterFailedPart(napi_env env, napi_value self, napi_value after, uint32_t from) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) return;  // a terminating thread: no JS can run
    napi_value err;
    if (napi_get_and_clear_last_exception(env, &err) != napi_ok) return;
    napi_value arg;
    napi_value result;
    napi_create_uint32(env, from, &arg);
    if (napi_call_function(env, self, after, 1, &arg, &result) != napi_ok) {
      napi_value ignored;
      napi_get_and_clear_last_exception(env, &ignored);
    }
    napi_throw(env, err);
  }

  // close(): drains what is queued through the normal JS path, then unbinds.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (src_ && src_->isOpen() && !decide_.IsEmpty()) {
      // Everything queued before the jumps were removed; the bound covers a
      // full kernel queue at any batch size.
      for (uint32_t i = 0; i <= DrainBound(); i++) {
        if (!DrainBatch(env)) break;
      }
    }
    Shutdown(true);
    return env.Undefined();
  }


  // One receive -> decide -> verdicts -> after round without blocking, for
  // close(). Returns false when nothing was queued. A batch JS fails gets
  // the failure verdict and the drain goes on: nothing may stay queued.
  bool DrainBatch(Napi::Env env) {
    uint32_t n = src_->RecvBatch();
    if (n == 0) return false;
    Napi::HandleScope scope(env);
    napi_value arg = Napi::Number::New(env, n);
    napi_value args[2] = {arg, Napi::Number::New(env, 0)};
    napi_value result;
    napi_status status = napi_call_function(env, Value(), decide_.Value(), 2, args, &result);
    if (status != napi_ok || env.IsExceptionPending()) {
      if (env.IsExceptionPending()) env.GetAndClearPendingException();
      src_->counters()[C_JS_ERRORS] += 1;
      src_->FailBatch(n);
      return true;
    }
    src_->SendVerdicts(n);
    if (!after_.IsEmpty()) {
      status = napi_call_function(env, Value(), after_.Value(), 1, &arg, &result);
      if (env.IsExceptionPending()) env.GetAndClearPendingException();
    }
    return true;
  }

  // Unbinds. With no JS to ask (env teardown), whatever is still readable
  // gets the failure verdict first.
  void Shutdown(bool fromJs) {
    if (!src_) return;
    if (src_->isOpen() && !fromJs) {
      for (uint32_t i = 0; i <= DrainBound(); i++) {
        uint32_t n = src_->RecvBatch();
        if (n == 0) break;
        src_->FailBatch(n);
      }
    }
    src_->Close();
  }

  uint32_t DrainBound() const { return src_->maxLen() / src_->batchSize() + 1; }

  static uint64_t NowNs() {
    timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return static_cast<uint64_t>(t.tv_sec) * 1000000000u + static_cast<uint64_t>(t.tv_nsec);
  }

  EnvCleanup<Queue> cleanup_;
  Napi::FunctionReference decide_;
  Napi::FunctionReference after_;
  // Benchmarks only: nanoseconds per stage (Stage), or null.
  double* stages_ = nullptr;
  uint32_t sampleCap_ = 0;
  uint32_t samples_ = 0;
  Napi::ObjectReference stagesRef_;
};

// A Capture object: the Queue's shape on a passive source (libpcap devices).
// run() waits for packets, calls decide(n, 0) and then afterVerdicts(n) on
// the batch; no verdict goes anywhere, the engine's would-be verdicts are
// only logged.
class Capture : public SourceWrap<Capture, PcapCapture> {
  friend class SourceWrap<Capture, PcapCapture>;

 public:
  explicit Capture(const Napi::CallbackInfo& info) : SourceWrap(info) {
    Napi::Env env = info.Env();
    Napi::Object o;
    if (!OptionsArg(info, "Capture", o)) return;
    CaptureOptions opts;
    Napi::Value devs = o.Get("devices");
    if (!devs.IsArray() || devs.As<Napi::Array>().Length() == 0) {
      Napi::TypeError::New(env, "Capture: devices must be a non-empty array of interface names or nflog:GROUP")
          .ThrowAsJavaScriptException();
      return;
    }
    Napi::Array arr = devs.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value v = arr.Get(i);
      if (!v.IsString() || v.As<Napi::String>().Utf8Value().empty()) {
        Napi::TypeError::New(env, "Capture: devices must be non-empty strings").ThrowAsJavaScriptException();
        return;
      }
      opts.devices.push_back(v.As<Napi::String>().Utf8Value());
    }
    opts.snaplen = U32Opt(o, "snaplen", opts.snaplen);
    opts.batchSize = U32Opt(o, "batchSize", opts.batchSize);
    opts.promisc = BoolOpt(o, "promisc", opts.promisc);
    Napi::Value filter = o.Get("filter");
    if (filter.IsString()) opts.filter = filter.As<Napi::String>().Utf8Value();
    Napi::Value other = o.Get("filterNonEthernet");
    if (other.IsString()) {
      opts.filterNonEthernet = other.As<Napi::String>().Utf8Value();
      opts.hasFilterNonEthernet = true;
    }
    Napi::Value dir = o.Get("direction");
    if (!dir.IsUndefined()) {
      std::string d = dir.IsString() ? dir.As<Napi::String>().Utf8Value() : "";
      if (d != "both" && d != "in") {
        Napi::TypeError::New(env, "Capture: direction must be 'both' or 'in'").ThrowAsJavaScriptException();
        return;
      }
      opts.inboundOnly = d == "in";
    }
    if (opts.batchSize == 0 || opts.batchSize > 4096 || opts.snaplen < 64 || opts.snaplen > 262144) {
      Napi::RangeError::New(env, "Capture: batchSize must be 1..4096 and snaplen 64..262144").ThrowAsJavaScriptException();
      return;
    }
    // pcap_set_buffer_size takes an int.
    Napi::Value buf = o.Get("bufferBytes");
    if (buf.IsNumber()) {
      double b = buf.As<Napi::Number>().DoubleValue();
      if (!(b >= 0 && b <= 2147483647.0) || b != static_cast<double>(static_cast<uint32_t>(b))) {
        Napi::RangeError::New(env, "Capture: bufferBytes must be an integer 0..2147483647 (2 GiB - 1)").ThrowAsJavaScriptException();
        return;
      }
      opts.bufferBytes = static_cast<uint32_t>(b);
    }
    src_ = std::make_shared<PcapCapture>(opts);
    if (!Attach(env, o, "Capture", C_ALL_COUNTER_COUNT)) return;
    if (!src_->Open()) {
      Napi::Error::New(env, "capture " + src_->error()).ThrowAsJavaScriptException();
      return;
    }
    cleanup_.Hook(env, this);
  }

  ~Capture() override {
    if (src_) src_->Close();
  }

  void OnEnvShutdown() {
    if (src_) src_->Close();
  }

 private:
  // run(decide, flag, timeoutMs[, afterVerdicts]), as Queue.run: returns when
  // flag[0] != 0, a callback threw (rethrown), or the capture closed. A wait
  // that times out calls both with 0. A device that fails (deleted, down)
  // closes the capture and throws an Error naming it, with code
  // ERR_CAPTURE_DEVICE: the thread must open a new capture.
  Napi::Value Run(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RunArgs ra = ParseRunArgs(info, src_ && src_->isOpen(), "capture is closed");
    if (!ra.ok) return env.Undefined();
    napi_value fn = info[0];
    napi_value self = Value();
    while (src_->isOpen() && __atomic_load_n(ra.flag, __ATOMIC_ACQUIRE) == 0) {
      Napi::HandleScope scope(env);
      uint32_t n = src_->Fill();
      if (n == 0 && !src_->failed() && (src_->Wait(ra.timeoutMs) || src_->holding())) n = src_->Fill();
      if (n == 0 && src_->failed()) {
        // Frames read before the failure went through decide first.
        Napi::Error err = Napi::Error::New(env, "capture " + src_->error());
        err.Set("code", Napi::String::New(env, "ERR_CAPTURE_DEVICE"));
        src_->Close();
        err.ThrowAsJavaScriptException();
        return env.Undefined();
      }
      src_->RefreshStats(false);
      napi_value args[2];
      napi_value result;
      napi_create_uint32(env, n, &args[0]);
      napi_create_uint32(env, 0, &args[1]);
      napi_status status = napi_call_function(env, self, fn, 2, args, &result);
      if (status != napi_ok || env.IsExceptionPending()) {
        if (n) src_->counters()[C_JS_ERRORS] += 1;
        return env.Undefined();
      }
      if (ra.after) {
        status = napi_call_function(env, self, ra.after, 1, args, &result);
        if (status != napi_ok || env.IsExceptionPending()) return env.Undefined();
      }
    }
    return env.Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (src_) src_->Close();
    return info.Env().Undefined();
  }


  EnvCleanup<Capture> cleanup_;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Queue", Queue::Define(env, "Queue"));
  exports.Set("Capture", Capture::Define(env, "Capture"));
  Napi::Object layout = Napi::Object::New(env);
  layout.Set("fieldCount", static_cast<uint32_t>(F_FIELD_COUNT));
  // The shared counter list: the queue's, then the capture's (always 0 for a queue).
  layout.Set("counterCount", static_cast<uint32_t>(C_ALL_COUNTER_COUNT));
  layout.Set("noOffset", NO_OFFSET);
  layout.Set("verdictUnset", VERDICT_UNSET);
  layout.Set("stageCount", static_cast<uint32_t>(S_COUNT));
  exports.Set("layout", layout);
  return exports;
}

NODE_API_MODULE(nfips_nfq, Init)

}  // namespace nfips
