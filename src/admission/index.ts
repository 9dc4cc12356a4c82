export * from './review.js';
export * from './response.js';
export * from './annotations.js';
export * from './decide.js';
export * from './stamp-check.js';
