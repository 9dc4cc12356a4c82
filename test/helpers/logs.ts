/** Log capture: every byte a logger (or a CLI stream) writes, readable as text or JSON lines. */
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/logging/logger.js';

export class LogCapture extends Writable {
  readonly chunks: string[] = [];
  readonly #onChunk: ((text: string) => void) | undefined;

  /** `onChunk` sees every chunk as it is written (e.g. to act on a line). */
  constructor(onChunk?: (text: string) => void) {
    super();
    this.#onChunk = onChunk;
  }

  override _write(chunk: Buffer, _encoding: string, callback: () => void): void {
    const text = chunk.toString();
    this.chunks.push(text);
    this.#onChunk?.(text);
    callback();
  }
  text(): string {
    return this.chunks.join('');
  }
  lines(): Record<string, unknown>[] {
    return this.text()
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }
}

/** A JSON logger at `debug` whose lines the test can read back. */
export function recordingLogger(): {
  logger: Logger;
  lines: () => Record<string, unknown>[];
  capture: LogCapture;
} {
  const capture = new LogCapture();
  return { logger: createLogger('debug', capture), lines: () => capture.lines(), capture };
}
