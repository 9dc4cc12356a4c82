// Soak: the bad-input properties with 5 000 runs each instead of 200.
process.env.RELIABILITY_FUZZ_RUNS = '5000';
await import('../reliability/fuzz-admission.test.js');
