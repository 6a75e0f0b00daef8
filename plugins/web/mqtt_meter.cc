#include "mqtt_meter.h"

namespace hearth::web {

MqttMeter::Verdict MqttMeter::feed(const uint8_t* data, size_t n) {
  size_t i = 0;
  while (i < n) {
    switch (state_) {
      case State::kType:
        type_ = data[i] >> 4;
        if (packets_ == 0 && type_ != firstType_) return Verdict::kMalformed;
        length_ = 0;
        lengthBytes_ = 0;
        multiplier_ = 1;
        state_ = State::kLength;
        ++i;
        break;
      case State::kLength: {
        uint8_t b = data[i++];
        length_ += (b & 0x7f) * multiplier_;
        multiplier_ *= 128;
        ++lengthBytes_;
        if (b & 0x80) {
          if (lengthBytes_ == 4) return Verdict::kMalformed;
          break;
        }
        if (1 + static_cast<size_t>(lengthBytes_) + length_ > maxPacket_) {
          return Verdict::kTooLarge;
        }
        bodyLeft_ = length_;
        bodyPos_ = 0;
        if (bodyLeft_ == 0) {
          ++packets_;
          state_ = State::kType;
        } else {
          state_ = State::kBody;
        }
        break;
      }
      case State::kBody: {
        size_t take = n - i;
        if (take > bodyLeft_) take = static_cast<size_t>(bodyLeft_);
        // CONNACK: byte 0 acknowledge flags, byte 1 the return / reason code.
        if (packets_ == 0 && type_ == 2 && bodyPos_ <= 1 && bodyPos_ + take > 1) {
          connackCode_ = data[i + (1 - bodyPos_)];
        }
        i += take;
        bodyPos_ += take;
        bodyLeft_ -= take;
        if (bodyLeft_ == 0) {
          ++packets_;
          state_ = State::kType;
        }
        break;
      }
    }
  }
  return Verdict::kOk;
}

}  // namespace hearth::web
