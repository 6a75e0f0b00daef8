// The baseline for bench/coop_roundtrip.py: a compiled MQTT forwarder with no logic. It takes
// the hub's place on the same broker (the same four broker hops: A -> fwd -> B -> fwd -> A),
// republishing A's command into B's tree and B's answer into A's tree, byte for byte. What is
// left between it and hearthd is the hub's own work, so the ratio measures exactly that.
//
//   coop-forwarder PORT PASSWORD A_BASE B_BASE     (prints "ready" once subscribed)
//
// libmosquitto, MQTT 5, QoS 1, TCP_NODELAY: what hearthd's control plane uses.
#include <mosquitto.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

struct Routes {
  std::string cmdIn, cmdOut, replyIn, replyOut;
};

void onConnect(mosquitto* m, void* arg, int rc, int, const mosquitto_property*) {
  if (rc != 0) {
    std::fprintf(stderr, "coop-forwarder: connect refused: %s\n", mosquitto_connack_string(rc));
    std::exit(1);
  }
  auto* r = static_cast<Routes*>(arg);
  char* subs[] = {r->cmdIn.data(), r->replyIn.data()};
  mosquitto_subscribe_multiple(m, nullptr, 2, subs, 1, 0, nullptr);
}

void onSubscribe(mosquitto*, void*, int, int, const int*, const mosquitto_property*) {
  std::printf("ready\n");
  std::fflush(stdout);
}

void onMessage(mosquitto* m, void* arg, const mosquitto_message* msg, const mosquitto_property*) {
  auto* r = static_cast<Routes*>(arg);
  const std::string& to = r->cmdIn == msg->topic ? r->cmdOut : r->replyOut;
  mosquitto_publish_v5(m, nullptr, to.c_str(), msg->payloadlen, msg->payload, 1, false, nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: coop-forwarder PORT PASSWORD A_BASE B_BASE\n");
    return 2;
  }
  std::string a = argv[3], b = argv[4];
  Routes routes{a + "/bench/cmd", b + "/bench/cmdin", b + "/bench/reply", a + "/bench/resp"};
  mosquitto_lib_init();
  mosquitto* m = mosquitto_new("bench-forwarder", true, &routes);
  mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
  mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
  mosquitto_username_pw_set(m, "hearthd", argv[2]);
  mosquitto_connect_v5_callback_set(m, onConnect);
  mosquitto_subscribe_v5_callback_set(m, onSubscribe);
  mosquitto_message_v5_callback_set(m, onMessage);
  if (mosquitto_connect_bind_v5(m, "127.0.0.1", std::atoi(argv[1]), 30, nullptr, nullptr) !=
      MOSQ_ERR_SUCCESS) {
    std::fprintf(stderr, "coop-forwarder: cannot reach the broker on port %s\n", argv[1]);
    return 1;
  }
  int rc = mosquitto_loop_forever(m, -1, 1);
  mosquitto_destroy(m);
  mosquitto_lib_cleanup();
  return rc == MOSQ_ERR_SUCCESS ? 0 : 1;
}
