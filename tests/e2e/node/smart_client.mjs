// A SMART Backend Services client made with a real JWT library (jose), for
// tests/e2e/test_auth*.c and tests/bench/auth.sh.
//   node smart_client.mjs keys RS384|ES384 DIR [KID]
//       writes DIR/jwks.json (public keys) and DIR/private.json
//   node smart_client.mjs assert DIR CLIENT AUD [JTI] [EXP_SECONDS] [ISS]
//       prints a signed client_assertion (exp = now + EXP_SECONDS, default 240;
//       a negative value makes an expired one)
import * as jose from 'jose';
import { writeFileSync, readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';

const [cmd, ...args] = process.argv.slice(2);
if (cmd === 'keys') {
  const [alg, dir, kid = `${alg.toLowerCase()}-1`] = args;
  const { publicKey, privateKey } = await jose.generateKeyPair(alg, { extractable: true, modulusLength: 2048 });
  const pub = { ...(await jose.exportJWK(publicKey)), kid, alg, use: 'sig' };
  const priv = { ...(await jose.exportJWK(privateKey)), kid, alg };
  writeFileSync(`${dir}/jwks.json`, JSON.stringify({ keys: [pub] }));
  writeFileSync(`${dir}/private.json`, JSON.stringify(priv));
} else if (cmd === 'assert') {
  const [dir, client, aud, jti = randomUUID(), exp = '240', iss = client] = args;
  const priv = JSON.parse(readFileSync(`${dir}/private.json`, 'utf8'));
  const key = await jose.importJWK(priv, priv.alg);
  const now = Math.floor(Date.now() / 1000);
  const jwt = await new jose.SignJWT({})
    .setProtectedHeader({ alg: priv.alg, kid: priv.kid, typ: 'JWT' })
    .setIssuer(iss).setSubject(client).setAudience(aud).setJti(jti)
    .setExpirationTime(now + Number(exp))
    .sign(key);
  process.stdout.write(jwt);
} else {
  process.stderr.write('usage: smart_client.mjs keys ALG DIR | assert DIR CLIENT AUD [JTI] [EXP]\n');
  process.exit(2);
}
