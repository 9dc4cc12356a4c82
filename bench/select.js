/**
 * Micro-benchmark of the selective review parse against JSON.parse of the same bytes.
 *
 *   npm run build && taskset -c 1 node bench/select.js [dist folder]
 *
 * The optional folder (default ./dist) lets two builds be compared, interleaved:
 *   for i in 1 2 3; do taskset -c 1 node bench/select.js /tmp/old/dist; taskset -c 1 node bench/select.js; done
 * Prints microseconds per body (median of rounds) for each shape.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { secretCreateReview, secretUpdateReview } from './reviews.js';

const dist = resolve(process.argv[2] ?? 'dist');
const { createReviewReader } = await import(
  pathToFileURL(resolve(dist, 'admission/review.js')).href
);

/** An update review of about `size` bytes: data sized so the total lands there. */
function updateOfSize(size) {
  const base = secretUpdateReview(0).length;
  return secretUpdateReview(Math.max(0, Math.floor(((size - base) / 2 / 4) * 3)));
}

function withExtra(body, extra) {
  return body.replace('"dryRun":false', `"dryRun":false,"extra":${extra}`);
}

function manyKeys(unit, count) {
  const review = JSON.parse(secretCreateReview(1783));
  review.request.object.metadata.annotations = { '@': 0 };
  return JSON.stringify(review).replace('"@":0', `${unit.repeat(count)}"z":0`);
}

const shapes = [
  ['create 1.8 KB', Buffer.from(secretCreateReview(1783)), 0],
  ['update 2.9 KB', Buffer.from(updateOfSize(2868)), 0],
  ['update 1 MiB data', Buffer.from(secretUpdateReview()), 64 * 1024],
  ['9 000 nested arrays', Buffer.from(`[${'['.repeat(9000)}${']'.repeat(9000)}]`), 64 * 1024],
  [
    '200 000 {} in a field',
    Buffer.from(withExtra(secretCreateReview(1783), `[${'{},'.repeat(200_000)}{}]`)),
    64 * 1024,
  ],
  ['100 000 escaped keys', Buffer.from(manyKeys('"\\n\\n":0,', 100_000)), 64 * 1024],
  ['100 000 plain keys', Buffer.from(manyKeys('"kkkk":0,', 100_000)), 64 * 1024],
];

function chunks(body, size) {
  if (size === 0 || body.length <= size) return [body];
  const parts = [];
  for (let at = 0; at < body.length; at += size) parts.push(body.subarray(at, at + size));
  return parts;
}

function select(parts) {
  const reader = createReviewReader();
  for (const part of parts) {
    reader.write(part);
    void reader.heldBytes;
  }
  return reader.end();
}

function jsonParse(parts) {
  return JSON.parse(parts.length === 1 ? parts[0] : Buffer.concat(parts));
}

function timeUs(run, parts, budgetMs) {
  const rounds = [];
  for (let round = 0; round < 7; round += 1) {
    let count = 0;
    const started = process.hrtime.bigint();
    let elapsed = 0;
    while (elapsed < budgetMs * 1e6) {
      run(parts);
      count += 1;
      elapsed = Number(process.hrtime.bigint() - started);
    }
    rounds.push(elapsed / count / 1000);
  }
  rounds.sort((a, b) => a - b);
  return rounds[3];
}

for (const [name, body, chunkSize] of shapes) {
  const parts = chunks(body, chunkSize);
  const check = select(parts);
  if (name.startsWith('create') || name.startsWith('update')) {
    if (!check.ok) throw new Error(`${name}: ${check.message}`);
  }
  for (let warm = 0; warm < 200; warm += 1) select(parts);
  const selectUs = timeUs(select, parts, 60);
  const parseUs = timeUs(jsonParse, parts, 60);
  console.log(
    `${name.padEnd(24)} ${String(body.length).padStart(8)} B  select ${selectUs.toFixed(1).padStart(9)} us  JSON.parse ${parseUs.toFixed(1).padStart(9)} us  ratio ${(selectUs / parseUs).toFixed(2)}`,
  );
}
