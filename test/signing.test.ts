// The test helpers' own signing, checked against protocol.md's vectors and the official SDK, so a
// failing HTTP/auth test points at the server and not at the harness. No server needed.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import PusherServer from "pusher";
import {
  channelAuth,
  hmacHex,
  md5Hex,
  signedParams,
  signinAuth,
  stringToSign,
} from "./support/sign.ts";

const T = { timeout: 5000 };
const KEY = "278d425bdf160c739803";
const SECRET = "7ad3773142a6692b25b8";

describe("signing helpers", { timeout: 20000 }, () => {
  it("channel auth matches the protocol.md check vector", T, () => {
    assert.equal(
      channelAuth({ key: KEY, secret: SECRET }, "1234.1234", "private-foobar"),
      `${KEY}:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4`,
    );
  });

  it("HTTP signature matches the protocol.md check vector", T, () => {
    const body = '{"name":"foo","channels":["project-3"],"data":"{\\"some\\":\\"data\\"}"}';
    assert.equal(md5Hex(body), "ec365a775a4cd0599faeb73354201b6f");
    const params = signedParams({
      method: "POST",
      path: "/apps/3/events",
      body,
      key: KEY,
      secret: SECRET,
      timestamp: 1353088179,
    });
    assert.equal(params.body_md5, "ec365a775a4cd0599faeb73354201b6f");
    assert.equal(
      params.auth_signature,
      "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c",
    );
  });

  it("string to sign lower-cases and sorts keys, no URL encoding", T, () => {
    assert.equal(
      stringToSign("get", "/apps/1/channels", { info: "user_count,subscription_count", B: "x y" }),
      "GET\n/apps/1/channels\nb=x y&info=user_count,subscription_count",
    );
  });

  it("agrees with the official SDK for channel and user auth", T, () => {
    const sdk = new PusherServer({ appId: "3", key: KEY, secret: SECRET, host: "127.0.0.1" });
    const app = { key: KEY, secret: SECRET };
    assert.equal(
      sdk.authorizeChannel("1.2", "private-x").auth,
      channelAuth(app, "1.2", "private-x"),
    );
    const pres = sdk.authorizeChannel("1.2", "presence-x", { user_id: "7", user_info: { n: 1 } });
    assert.equal(pres.auth, channelAuth(app, "1.2", "presence-x", pres.channel_data));
    const user = sdk.authenticateUser("1.2", { id: "42" });
    assert.equal(user.auth, signinAuth(app, "1.2", user.user_data));
    assert.equal(hmacHex("s", "t").length, 64);
  });
});
