// The project's documentation as one text: README.md, then every Markdown file under docs/
// (recursively, in path order). Docs tests read this, so a section may move between pages
// without the tests losing it.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './manifests.js';

export function documentationFiles(): string[] {
  const pages = readdirSync(join(REPO_ROOT, 'docs'), { recursive: true, encoding: 'utf8' })
    .filter((path) => path.endsWith('.md'))
    .sort()
    .map((path) => join('docs', path));
  return ['README.md', ...pages];
}

export function readDocumentation(): string {
  return documentationFiles()
    .map((path) => readFileSync(join(REPO_ROOT, path), 'utf8'))
    .join('\n');
}
