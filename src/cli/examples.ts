/**
 * What each subcommand's --help shows after its options: the options it cannot run without, and
 * worked examples (on stories260K, the README's test model; file names as in ../shared/data).
 */

interface CommandHelp {
  /** The options the command refuses to run without, as a user reads them. */
  required: string;
  /** [what it does, the command line]. */
  examples: readonly (readonly [string, string])[];
}

export const COMMAND_HELP: Readonly<Record<string, CommandHelp>> = {
  convert: {
    required: '<file> and --out',
    examples: [
      ['a llama2.c checkpoint (its tok*.bin tokenizer beside it)', 'crepe convert stories260K.bin --out stories260K'],
      ['a GGUF file (F32, F16 or BF16 tensors)', 'crepe convert tinyllamas-stories-260k-f32.gguf --out stories260K-gguf'],
    ],
  },
  inspect: {
    required: '<model>',
    examples: [
      ['sparsity per tensor, and whether each block linear is 2:4 along its inputs', 'crepe inspect stories260K-ria-2of4 --pattern 2:4'],
    ],
  },
  eval: {
    required: '<model>, and --eval-ppl or --tasks (or both)',
    examples: [
      ['WikiText-2 perplexity in windows of 512 tokens', 'crepe eval stories260K --eval-ppl wiki.test.raw --seqlen 512'],
      ['zero-shot accuracy on every task, the first 100 documents of each, as JSON', 'crepe eval stories260K --tasks all --task-dir tasks --limit 100 --json'],
    ],
  },
  prune: {
    required: '<model>, --method, --sparsity or --pattern, --calib and --out',
    examples: [
      ['Wanda at 50 %, calibrated on C4, with the perplexity before and after', 'crepe prune stories260K --method wanda --sparsity 0.5 --calib c4.jsonl --seqlen 512 --eval-ppl wiki.test.raw --out stories260K-wanda-50'],
      ['RIA 2:4, stored as compressed-tensors\' sparse bitmask', 'crepe prune stories260K --method ria --pattern 2:4 --calib c4.jsonl --seqlen 512 --save-format sparse-bitmask --out stories260K-ria-2of4'],
      ['CRePE at 50 % with coefficients searched for this model first', 'crepe prune stories260K --method crepe --sparsity 0.5 --auto --calib c4.jsonl --seqlen 512 --out stories260K-crepe-50'],
    ],
  },
  search: {
    required: '<model>, --sparsity or --pattern, --calib and --out',
    examples: [
      ['PHO for 50 %, writing found/crepe-config.json', 'crepe search stories260K --sparsity 0.5 --calib c4.jsonl --seqlen 512 --out found'],
      ['then prune with the configuration found', 'crepe prune stories260K --method crepe --sparsity 0.5 --config found/crepe-config.json --calib c4.jsonl --seqlen 512 --out stories260K-crepe-found'],
      ['hill climbing on real held-out perplexity (slower)', 'crepe search stories260K --sparsity 0.5 --strategy hillclimb --calib c4.jsonl --seqlen 512 --eval-ppl ptb.valid.txt --eval-max-chunks 16 --out found-hc'],
    ],
  },
};

/** A command line cut into shell lines of at most 80 columns (continued with a backslash). */
function wrap(line: string): string {
  const lines: string[] = [];
  let current = '';
  // An option stays on one line with its value.
  const units = line.split(' ').reduce<string[]>((all, word) => {
    if (all.length > 0 && all[all.length - 1].startsWith('--') && !all[all.length - 1].includes(' ') && !word.startsWith('-')) all[all.length - 1] += ` ${word}`;
    else all.push(word);
    return all;
  }, []);
  for (const word of units) {
    // The first line starts at column 7 ("    $ "), the others at column 9.
    const room = (lines.length === 0 ? 80 - 6 : 80 - 8) - 2;
    if (current !== '' && current.length + 1 + word.length > room) {
      lines.push(current);
      current = word;
    } else current = current === '' ? word : `${current} ${word}`;
  }
  return [...lines, current].join(' \\\n        ');
}

/** The text shown after the options of `crepe <command> --help`. */
export function commandHelpText(command: string): string {
  const help = COMMAND_HELP[command];
  if (!help) return '';
  const examples = help.examples.map(([what, line]) => `  ${what}:\n    $ ${wrap(line)}`).join('\n');
  return `\nRequired: ${help.required}\n\nExamples:\n${examples}`;
}
