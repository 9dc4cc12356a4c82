import { Command } from 'commander';
import type { CliContext } from '../context.js';

// Placeholder until the command is implemented.
export function reencryptCommand(ctx: CliContext): Command {
  return new Command('reencrypt').description('(not yet implemented)').action(() => {
    ctx.stderr.write('reencrypt: not implemented yet\n');
    ctx.exitCode = 2;
  });
}
