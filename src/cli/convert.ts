/** `crepe convert <file> --out <dir>`: a GGUF or llama2.c checkpoint → a Hugging Face model directory. */
import type { Command } from 'commander';
import { printJson, type CliIo } from './options.ts';
import { progressPrinter } from './progress.ts';

interface ConvertCliOptions {
  revision?: string;
  out: string;
  tokenizer?: string;
  overwrite?: boolean;
  json?: boolean;
}

export function register(program: Command, io: CliIo): void {
  program
    .command('convert')
    .description('convert a GGUF (F32/F16/BF16) or llama2.c .bin checkpoint to a Hugging Face directory (config.json, model.safetensors, tokenizer.json)')
    .argument('<file>', 'GGUF file, or llama2.c legacy .bin checkpoint; or a Hub id: org/name (its one .gguf) or org/name/<file>[@revision]')
    .option('--revision <rev>', 'branch, tag or commit of a Hub id (default main)')
    .requiredOption('--out <dir>', 'output model directory (must not exist unless --overwrite)')
    .option('--tokenizer <file>', 'llama2.c tokenizer (tok512.bin, tokenizer.bin) for a .bin checkpoint; default: the one tok*.bin beside it')
    .option('--overwrite', 'replace an existing output directory')
    .option('--json', 'print the result as JSON')
    .action(async (file: string, opts: ConvertCliOptions) => {
      const { convertModel } = await import('../workflows/convert.ts');
      const report = await convertModel({ input: file, revision: opts.revision, onProgress: progressPrinter(io), out: opts.out, tokenizer: opts.tokenizer, overwrite: opts.overwrite });
      if (opts.json) return printJson(io.stdout, report);
      const { spec } = report;
      const format = report.format === 'gguf' ? `GGUF v${report.formatVersion}` : 'llama2.c (legacy .bin)';
      const lines = [
        `${report.input}: ${format}, ${report.tensors} tensors, ${report.parameters.toLocaleString('en-US')} parameters, ${report.dtype}`,
        `  llama: hidden ${spec.hiddenSize}, intermediate ${spec.intermediateSize}, ${spec.numLayers} layers, ` +
          `${spec.numHeads} heads (${spec.numKvHeads} KV), vocab ${spec.vocabSize}, context ${spec.maxPositionEmbeddings}, ` +
          `${spec.tieWordEmbeddings ? 'tied' : 'untied'} embeddings`,
        `  tokenizer from ${report.tokenizerSource}`,
        ...report.notes.map((note) => `  note: ${note}`),
        `wrote ${report.outDir}`,
      ];
      io.stdout.write(`${lines.join('\n')}\n`);
    });
}
