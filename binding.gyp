{
  "targets": [
    {
      "target_name": "nfips_nfq",
      "sources": ["native/addon.cc", "native/nfq_socket.cc", "native/pcap_capture.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_DISABLE_CPP_EXCEPTIONS", "NAPI_VERSION=8"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc!": ["-fno-exceptions"],
      "libraries": ["-lnetfilter_queue", "-lmnl", "-lpcap"]
    }
  ]
}
