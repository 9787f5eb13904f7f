// What a pruned directory holds besides its weights, on stories260K (wanda 2:4 --permute lsa with a
// perplexity measurement), in process:
//   - every non-weight file of the input, byte-identical (chat template file, a chat template
//     inside tokenizer_config.json, generation config, a subdirectory), weights and hidden files not;
//   - the model card: the input's front matter merged (tags, base_model), a Pruning section whose
//     numbers are the run's (calibration sha256 of the file, windows, PPL dense and pruned);
//   - crepe-report.md with its four charts;
//   - the dense baseline equals `evaluatePerplexity` of the input on the same windows;
//   - storage order: down_proj is 2:4 as stored in every layer, and undoing the folded permutation
//     (gate/up rows, down columns) gives the same perplexity within 1e-5 relative, while the
//     un-permuted down_proj is not 2:4 as stored.
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { evaluatePerplexity, pruneModel, satisfiesNM, SafetensorsWeights, type PruneResult } from '../../src/index.ts';
import { writeSafetensors, type TensorToWrite } from '../../src/io/safetensors-writer.ts';
import { splitFrontMatter } from '../../src/workflows/prune-report.ts';
import { sha256File } from '../../src/util/hash.ts';
import { C4_SAMPLE, REPO_ROOT, WIKITEXT_TEST } from '../helpers/shared.ts';
import { scratchDir, storiesModelDir } from '../helpers/stories.ts';

const EVAL = { evalText: WIKITEXT_TEST, evalSeqlen: 256, evalMaxChunks: 8 };
const EXTRA: Record<string, string> = {
  'chat_template.jinja': '{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}\n{% endfor %}',
  'README.md': '---\nlicense: mit\ntags: [llama, "tiny stories"]\nbase_model: karpathy/llama2.c\n---\n\n# stories260K\n\nA tiny model.\n',
  'special_tokens_map.json': '{"bos_token": "<s>", "eos_token": "</s>"}\n',
  'extra/notes.txt': 'kept\n',
};

describe('prune output directory', () => {
  let model: string;
  let report: PruneResult;
  let root: string;

  before(async () => {
    root = scratchDir('prune-outputs');
    model = path.join(root, 'model');
    cpSync(await storiesModelDir(), model, { recursive: true });
    mkdirSync(path.join(model, 'extra'));
    for (const [name, text] of Object.entries(EXTRA)) writeFileSync(path.join(model, name), text);
    // A chat template inside tokenizer_config.json, with odd spacing that a re-serialisation would lose.
    const config = JSON.parse(readFileSync(path.join(model, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(path.join(model, 'tokenizer_config.json'), JSON.stringify({ ...config, chat_template: "{% for m in messages %}{{ m['content'] }}{% endfor %}" }, null, 3) + '\n\n');
    writeFileSync(path.join(model, 'pytorch_model.bin'), 'stale dense weights');
    writeFileSync(path.join(model, '.gitattributes'), '*.bin filter=lfs\n');
    report = await pruneModel({
      model, out: path.join(root, 'out'), method: 'wanda', target: { kind: 'nm', n: 2, m: 4 }, permute: { strategy: 'lsa' },
      calib: C4_SAMPLE, nsamples: 8, seqlen: 128, seed: 3, ...EVAL, baseModel: 'crepe-test/stories260K', command: 'crepe prune …',
    });
  });

  it('copies every non-weight file byte for byte and nothing else', () => {
    const input = readdirSync(model).filter((n) => !n.startsWith('.') && n !== 'model.safetensors' && n !== 'pytorch_model.bin' && n !== 'README.md');
    assert.ok(input.includes('tokenizer_config.json') && input.includes('chat_template.jinja') && input.includes('generation_config.json'));
    for (const name of [...input.filter((n) => n !== 'extra' && n !== 'config.json'), 'extra/notes.txt']) {
      assert.ok(readFileSync(path.join(report.out, name)).equals(readFileSync(path.join(model, name))), `${name} differs`);
    }
    // config.json is the input's with compressed-tensors' sparsity_config added.
    const { quantization_config: quantization, ...config } = JSON.parse(readFileSync(path.join(report.out, 'config.json'), 'utf8'));
    assert.deepEqual(config, JSON.parse(readFileSync(path.join(model, 'config.json'), 'utf8')));
    assert.equal(quantization.sparsity_config.format, 'dense');
    assert.deepEqual(
      readdirSync(report.out).sort(),
      [...input, 'README.md', 'model.safetensors', 'crepe-report.json', 'crepe-report.md', '.crepe-output'].sort(),
    );
    assert.deepEqual(report.files.copied.sort(), [...input.filter((n) => n !== 'extra'), 'extra/notes.txt', 'README.md'].sort());
    assert.equal(report.files.skipped.find((s) => s.file === 'pytorch_model.bin')?.reason, 'weights');
  });

  it('measures the dense baseline on the same windows', async () => {
    const dense = await evaluatePerplexity({ model, text: WIKITEXT_TEST, seqlen: 256, maxChunks: 8 });
    assert.ok(report.baseline && report.evaluation);
    assert.equal(report.baseline.ppl, dense.ppl);
    assert.equal(report.baseline.windows, 8);
    assert.equal(report.evaluation.windows, 8);
    assert.ok(report.evaluation.ppl > report.baseline.ppl, 'a 2:4 model is worse than the dense one');
  });

  it('writes a model card with merged front matter and the run in its Pruning section', () => {
    const card = readFileSync(path.join(report.out, 'README.md'), 'utf8');
    const { yaml, body } = splitFrontMatter(card);
    assert.equal(yaml, 'license: mit\ntags:\n- llama\n- "tiny stories"\n- pruned\n- crepe\n- sparse\nbase_model: crepe-test/stories260K');
    assert.ok(body.startsWith('\n# stories260K\n\nA tiny model.\n\n<!-- crepe:pruning -->\n## Pruning\n'), body.slice(0, 80));
    const sha = sha256File(C4_SAMPLE);
    const version = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    const expectedRows = [
      '| Method | wanda, 2:4, lsa channel permutation |',
      '| Target | 2:4 |',
      `| Calibration | c4-train.00000-of-01024.first1000.jsonl (sha256 ${sha.slice(0, 12)}…), 8 windows × 128 tokens, seed 3 (windows sha256 ${report.calibration.windowsSha256.slice(0, 12)}…) |`,
      '| Linear sparsity reached | 50.000% (113280 of 226560 block-linear weights; embeddings, norms and lm_head dense) |',
      `| Perplexity dense → pruned | ${report.baseline!.ppl.toFixed(4)} → ${report.evaluation!.ppl.toFixed(4)} (+${((report.evaluation!.ppl / report.baseline!.ppl - 1) * 100).toFixed(1)}%) on wiki.test.raw, 8 windows × 256 tokens |`,
      `| Tool | crepe ${version} |`,
      '| Command | `crepe prune …` |',
    ];
    for (const row of expectedRows) assert.ok(body.includes(`\n${row}\n`), `missing ${row}`);
    assert.match(body, /\| Storage order \| N:M as stored: 5 down_proj .*5 q_proj, 5 k_proj, 5 v_proj, 5 o_proj, 5 gate_proj, 5 up_proj \|/);
    assert.ok(body.endsWith('<!-- /crepe:pruning -->\n'));
  });

  it('writes crepe-report.md with its charts', () => {
    const md = readFileSync(path.join(report.out, 'crepe-report.md'), 'utf8');
    assert.equal(md.match(/<svg /g)?.length, 4, 'sparsity per layer and per linear, perplexity, time');
    for (let layer = 0; layer < 5; layer++) assert.ok(md.includes(`>layer ${layer}</text>`));
    assert.ok(md.includes(`>${report.baseline!.ppl.toFixed(3)}</text>`) && md.includes(`>${report.evaluation!.ppl.toFixed(3)}</text>`));
    assert.ok(md.includes('>mlp.down_proj</text>') && md.includes('>50.0%</text>'));
    assert.match(md, /Folded into the stored weights \(N:M as written\): model\.layers\.0\.mlp\.down_proj, .*model\.layers\.4\.mlp\.down_proj\./);
  });

  it('stores down_proj 2:4 as written; undoing the fold gives the same model', async () => {
    assert.deepEqual(report.storage?.foldedIntoWeights, [0, 1, 2, 3, 4].map((l) => `model.layers.${l}.mlp.down_proj`));
    assert.equal(report.storage?.needRuntimePermutation.length, 30);
    const weights = SafetensorsWeights.open(report.out);
    const tensors: TensorToWrite[] = [];
    let unfoldedNotNM = 0;
    try {
      for (const name of weights.names()) {
        const { dtype, shape } = weights.info(name);
        tensors.push({ name, dtype, shape, data: weights.readRaw(name) });
      }
      for (const layer of report.layers) {
        const prefix = `model.layers.${layer.layer}.mlp.`;
        const order = layer.linears.find((l) => l.name === 'mlp.down_proj')!.permutation!.order;
        const [hidden, inter] = weights.info(`${prefix}down_proj.weight`).shape;
        const down = weights.readF32(`${prefix}down_proj.weight`);
        assert.equal(satisfiesNM(down, hidden, inter, 2, 4), true, `layer ${layer.layer} down_proj is not 2:4 as stored`);
        // Inverse: stored column p is original column order[p].
        const unDown = new Float32Array(down.length);
        for (let i = 0; i < hidden; i++) for (let p = 0; p < inter; p++) unDown[i * inter + order[p]] = down[i * inter + p];
        if (!satisfiesNM(unDown, hidden, inter, 2, 4)) unfoldedNotNM++;
        const replace = (name: string, data: Float32Array) => {
          tensors.find((t) => t.name === name)!.data = data;
        };
        replace(`${prefix}down_proj.weight`, unDown);
        for (const part of ['gate_proj', 'up_proj']) {
          const rows = weights.readF32(`${prefix}${part}.weight`);
          const unRows = new Float32Array(rows.length);
          for (let p = 0; p < inter; p++) unRows.set(rows.subarray(p * hidden, (p + 1) * hidden), order[p] * hidden);
          replace(`${prefix}${part}.weight`, unRows);
        }
      }
    } finally {
      weights.close();
    }
    assert.ok(unfoldedNotNM > 0, 'the permutation changed nothing; the test would not see a fold');
    const unfolded = path.join(root, 'unfolded');
    cpSync(report.out, unfolded, { recursive: true });
    await writeSafetensors(path.join(unfolded, 'model.safetensors'), tensors);
    const plain = await evaluatePerplexity({ model: unfolded, text: WIKITEXT_TEST, seqlen: 256, maxChunks: 8 });
    const relative = Math.abs(plain.ppl - report.evaluation!.ppl) / plain.ppl;
    assert.ok(relative < 1e-5, `PPL ${report.evaluation!.ppl} (folded) vs ${plain.ppl} (unfolded): ${relative}`);
  });
});
