// The openai package (Node) against a live Plantain server: generate, edit with several files,
// stream partial images, chat with image output. Usage: node openai_scenario.mjs BASE_URL INPUT_PNG_BASE64.
import OpenAI, { toFile } from "openai";

const base = process.argv[2];
const input = Buffer.from(process.argv[3], "base64");
const client = new OpenAI({ apiKey: "node-test-key", baseURL: `${base}/v1`, maxRetries: 0 });

const generated = await client.images.generate({ model: "gpt-image-1", prompt: "a lighthouse", size: "1024x1024" });

const edited = await client.images.edit({
  model: "gpt-image-1",
  prompt: "the two together, side by side",
  image: [
    await toFile(Buffer.from(generated.data[0].b64_json, "base64"), "first.png", { type: "image/png" }),
    await toFile(input, "second.png", { type: "image/png" }),
  ],
});

const events = [];
const stream = await client.images.generate({
  model: "gpt-image-1",
  prompt: "a red kite",
  stream: true,
  partial_images: 1,
});
for await (const event of stream) {
  events.push({ type: event.type, bytes: event.b64_json?.length ?? 0 });
}

const chat = await client.chat.completions.create({
  model: "google/gemini-2.5-flash-image",
  messages: [{ role: "user", content: "a lighthouse, as a postcard" }],
  modalities: ["image", "text"],
  image_config: { aspect_ratio: "16:9" },
});
const chatImages = (chat.choices[0].message.images ?? []).map((image) => image.image_url.url);

let refused = null;
try {
  await client.images.generate({ model: "gpt-image-1", prompt: "" });
} catch (error) {
  refused = { status: error.status, param: error.param ?? null, message: String(error.message) };
}

console.log(
  JSON.stringify({
    generated: generated.data.map((d) => d.b64_json),
    edited: edited.data.map((d) => d.b64_json),
    usage: edited.usage ?? null,
    streamed: events,
    chat: chatImages,
    refused,
  }),
);
