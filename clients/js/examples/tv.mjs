// Bob's TV (seed 000 §1, 2, 4, 7, 8, 18, 19): shows its openId, agrees to access requests and
// plays what it is sent. Run: HUB=hub.local USER_ID=bob PASSWORD=… node tv.mjs
import { mtl } from 'hearth-client';

mtl.coop.initialize({
  server: process.env.HUB || 'hub.local', // the hub (its front door: wss://hub.local:8443/mqtt)
  wssPort: 8443,
  serverPort: Number(process.env.HUB_PORT) || 1883, // plain MQTT, only on the hub itself
  serverEnableSSL: process.env.HUB_TLS !== '0',
  appId: 'com.example.tv',
  clientIdentify: 'living-room-tv',
  deviceModel: 'Bravia',
  deviceName: 'Living room TV',
});

mtl.coop.receiveAccessRequest(function (res) {
  var from = res.from; // the phone asking
  print({ tv: 'accessRequest', from: from, permissions: res.commandParams.permissions });
  mtl.coop.agreeAccessRequest({
    commandId: res.commandId,
    to: from,
    success: function () {
      print({ tv: 'agreed', to: from.clientIdentify });
    },
    fail: function (err) {
      print({ tv: 'agree failed', code: err.code, message: err.message });
    },
  });
});

mtl.coop.receiveCommand(function (cmd) {
  print({ tv: 'command', commandId: cmd.commandId, commandType: cmd.commandType, params: cmd.commandParams });
  mtl.coop.replyCommand({
    commandId: cmd.commandId,
    commandParams: { playing: cmd.commandParams.url },
    to: cmd.from,
    success: function () {
      print({ tv: 'replied', commandId: cmd.commandId });
    },
    fail: function (err) {
      print({ tv: 'reply failed', code: err.code, message: err.message });
    },
  });
});

mtl.coop.login({
  userId: process.env.USER_ID,
  password: process.env.PASSWORD,
  success: function () {
    mtl.coop.getOpenId({
      success: function (res) {
        print({ tv: 'ready', openId: res.openId }); // shown as a QR code on a real TV
      },
    });
  },
  fail: function (err) {
    print({ tv: 'login failed', code: err.code, message: err.message });
    process.exit(1);
  },
});

function print(o) {
  console.log(JSON.stringify(o));
}
