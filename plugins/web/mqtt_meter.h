#pragma once
// Watches an MQTT byte stream as it is piped, without changing a byte: it finds where each
// control packet ends from the fixed header (type and Remaining Length), so the front door can
// close a connection whose packet is over the limit, know when the client's CONNECT is
// complete, and read the return code of the broker's CONNACK. Nothing else is parsed; the
// broker does all of MQTT. One meter per direction of one connection; not thread-safe.

#include <cstddef>
#include <cstdint>

namespace hearth::web {

class MqttMeter {
 public:
  enum class Verdict {
    kOk,
    kTooLarge,  // a packet's Remaining Length exceeds the limit
    kMalformed  // a Remaining Length over 4 bytes, or the first packet of the wrong type
  };

  // maxPacket: the most bytes one packet (fixed header included) may have. firstType: the type
  // the first packet must have (1 CONNECT from clients, 2 CONNACK from the broker).
  MqttMeter(size_t maxPacket, int firstType) : maxPacket_(maxPacket), firstType_(firstType) {}

  // Feeds the next bytes of the stream.
  Verdict feed(const uint8_t* data, size_t n);

  // The first packet (CONNECT or CONNACK) has been seen completely.
  bool firstComplete() const { return packets_ > 0; }
  // For a CONNACK stream: the return code (MQTT 3.1.1) / reason code (MQTT 5), once known.
  int connackCode() const { return connackCode_; }
  uint64_t packets() const { return packets_; }
  // Every byte fed so far belongs to a complete packet (none is begun and unfinished).
  bool atPacketBoundary() const { return state_ == State::kType; }

 private:
  enum class State { kType, kLength, kBody };
  const size_t maxPacket_;
  const int firstType_;
  State state_ = State::kType;
  int type_ = 0;
  uint32_t length_ = 0;
  int lengthBytes_ = 0;
  uint32_t multiplier_ = 1;
  uint64_t bodyLeft_ = 0;
  uint64_t bodyPos_ = 0;
  uint64_t packets_ = 0;
  int connackCode_ = -1;
};

// Whether a CONNACK code is a refused login (bad user name or password / not authorized), in
// MQTT 3.1.1 (4, 5) or MQTT 5 (0x86, 0x87).
inline bool isLoginFailure(int connackCode) {
  return connackCode == 4 || connackCode == 5 || connackCode == 0x86 || connackCode == 0x87;
}

}  // namespace hearth::web
