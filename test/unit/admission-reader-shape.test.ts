// The review reader is made once per admission request. A getter in an object literal gets
// a fresh accessor pair per object, which V8 allocates in the old generation: every
// request's parser then survived the scavenges and was promoted, and the webhook ran a
// mark-compact every 1-2 s under load (bench/RESULTS.md). The reader's accessors must come
// from its prototype.
import t from 'tap';
import { createReviewReader, parseAdmissionReview } from '../../src/admission/review.js';

t.test('the review reader holds no accessor of its own', (t) => {
  const reader = createReviewReader();
  const accessors = Object.entries(Object.getOwnPropertyDescriptors(reader))
    .filter(([, descriptor]) => 'get' in descriptor || 'set' in descriptor)
    .map(([name]) => name);
  t.same(accessors, [], 'no own property is an accessor (accessors belong on the prototype)');
  t.equal(typeof reader.heldBytes, 'number', 'heldBytes still reads as a number');
  reader.write(Buffer.from('{"request":{"uid":"u-1"'));
  t.ok(reader.heldBytes > 0, 'and counts the bytes it holds mid-body');
  reader.write(Buffer.from('}}'));
  t.same(
    reader.end().ok,
    parseAdmissionReview('{"request":{"uid":"u-1"}}').ok,
    'it reads like parseAdmissionReview',
  );
  t.end();
});
