// Alice's phone (seed 000 §1, 2, 3, 5, 6, 17): looks the TV up by the openId it showed, asks it
// for access, and sends it a command once it agreed.
// Run: HUB=hub.local USER_ID=alice PASSWORD=… TV_OPEN_ID=… node phone.mjs
import { mtl } from 'hearth-client';

mtl.coop.initialize({
  server: process.env.HUB || 'hub.local',
  wssPort: 8443,
  serverPort: Number(process.env.HUB_PORT) || 1883,
  serverEnableSSL: process.env.HUB_TLS !== '0',
  appId: 'com.example.remote',
  clientIdentify: 'alice-phone',
  deviceModel: 'Pixel 8',
  deviceName: "Alice's phone",
});

mtl.coop.login({
  userId: process.env.USER_ID,
  password: process.env.PASSWORD,
  success: function () {
    mtl.coop.getDeviceInfo({
      openId: process.env.TV_OPEN_ID,
      success: function (tv) {
        print({ phone: 'found', deviceName: tv.deviceName, online: tv.online });
        askForAccess(tv);
      },
      fail: function (err) {
        done({ phone: 'getDeviceInfo failed', code: err.code, message: err.message });
      },
    });
  },
  fail: function (err) {
    done({ phone: 'login failed', code: err.code, message: err.message });
  },
});

function askForAccess(tv) {
  mtl.coop.requestAccessTo({
    appId: tv.appId,
    userId: tv.userId,
    clientIdentify: tv.clientIdentify,
    permissions: ['play'],
    allPermissions: false,
    onResponse: function (res) {
      if (res.code == 0) {
        print({ phone: 'access granted', by: res.from.clientIdentify });
        play(res.from);
      } else {
        done({ phone: 'access refused', message: res.message });
      }
    },
    success: function (res) {
      print({ phone: 'asked', commandId: res.commandId });
    },
    fail: function (err) {
      done({ phone: 'requestAccessTo failed', code: err.code, message: err.message });
    },
  });
}

function play(tv) {
  mtl.coop.sendCommand({
    commandType: 'play',
    to: { userId: tv.userId, appId: tv.appId, clientIdentify: tv.clientIdentify },
    commandParams: { url: 'https://example.com/v.mp4' },
    onResponse: function (res) {
      done({ phone: 'reply', commandId: res.commandId, from: res.from.clientIdentify, params: res.commandParams });
    },
    success: function (res) {
      print({ phone: 'sent', commandId: res.commandId, state: res.state });
    },
    fail: function (err) {
      done({ phone: 'sendCommand failed', code: err.code, message: err.message });
    },
  });
}

function done(o) {
  print(o);
  mtl.coop.logout(); // says "offline" first, then disconnects
}

function print(o) {
  console.log(JSON.stringify(o));
}
