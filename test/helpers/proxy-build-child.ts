/**
 * Builds the proxy cache of a 6-layer random llama in the directory given as argument, slowly
 * (each decoder block takes at least 400 ms to read), so that a test can kill it mid-build.
 * The model, windows and cache options are those of `slowBuildInputs`, which the test reuses.
 */
import { ProxyContext } from '../../src/search/proxy.ts';
import { slowBuildInputs } from './proxy-build-inputs.ts';

const dir = process.argv[2];
if (!dir) throw new Error('usage: proxy-build-child.ts <cache dir>');
const { model, windows, seqlen, options } = slowBuildInputs(dir, 400);
const context = await ProxyContext.open(model, windows, seqlen, { device: 'cpu', threads: 1 }, options);
await context.close();
