// The S3 stand-in of the media tests (tests/http/lib/s3.mjs: s3rver
// behind a SigV4 check) judged by AWS's own client: every request the
// official SDK signs passes, and the SDK with a wrong secret or region is
// refused as S3 refuses it.  So the check the media plugin's requests
// pass is neither looser nor stricter than the provider's.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { S3Client, PutObjectCommand, GetObjectCommand, HeadObjectCommand,
  DeleteObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { startS3, ACCESS_KEY, SECRET_KEY, REGION } from './lib/s3.mjs';

let s3;
before(async () => { s3 = await startS3({ bucket: 'sdk-check' }); });
after(async () => { await s3?.stop(); });

function client({ secret = SECRET_KEY, region = REGION } = {}) {
  return new S3Client({ endpoint: s3.endpoint, region, forcePathStyle: true,
    credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: secret }, maxAttempts: 1 });
}

test('the AWS SDK\'s own signed requests all pass the check', async () => {
  const c = client();
  const body = Buffer.from('bytes signed by the AWS SDK \u00e9');
  await c.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'ab/some key+x.1', Body: body,
    ContentType: 'text/plain' }));
  const head = await c.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: 'ab/some key+x.1' }));
  assert.equal(head.ContentLength, body.length);
  const got = await c.send(new GetObjectCommand({ Bucket: s3.bucket, Key: 'ab/some key+x.1', Range: 'bytes=0-4' }));
  assert.equal(Buffer.from(await got.Body.transformToByteArray()).toString(), 'bytes');
  const list = await c.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: 'ab/' }));
  assert.deepEqual(list.Contents.map((o) => o.Key), ['ab/some key+x.1']);
  await c.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: 'ab/some key+x.1' }));
  c.destroy();
  assert.deepEqual(s3.rejected, [], JSON.stringify(s3.rejected));
});

test('the SDK with a wrong secret or region is refused: 403 SignatureDoesNotMatch, nothing stored', async () => {
  for (const opts of [{ secret: 'not-the-secret' }, { region: 'eu-west-1' }]) {
    const c = client(opts);
    const before = s3.rejected.length;
    await assert.rejects(c.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'cd/refused', Body: 'x' })),
      (e) => e.$metadata?.httpStatusCode === 403 && e.name === 'SignatureDoesNotMatch');
    c.destroy();
    assert.equal(s3.rejected.length, before + 1);
  }
  const c = client();
  await assert.rejects(c.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: 'cd/refused' })),
    (e) => e.$metadata?.httpStatusCode === 404);
  c.destroy();
});
