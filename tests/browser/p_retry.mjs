// The one bare import of @google/genai's browser build ("p-retry", CommonJS in node_modules, which
// a browser cannot load): a bundler resolves it; this page maps it here. The SDK calls it only
// when a request sets retryOptions, which the page does not.
export default async function pRetry(run, options = {}) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await run(attempt + 1);
    } catch (error) {
      if (attempt >= (options.retries ?? 0)) throw error;
    }
  }
}
