// @google/genai (Node) against a live Plantain server: generate, edit with several images, stream,
// chat.
// Usage: node genai_scenario.mjs BASE_URL INPUT_PNG_BASE64. Prints one JSON object with what each step got back.
import { GoogleGenAI } from "@google/genai";

const base = process.argv[2];
const ai = new GoogleGenAI({ apiKey: "node-test-key", httpOptions: { baseUrl: base } });
const model = "gemini-2.5-flash-image";

function images(response) {
  const parts = response.candidates?.[0]?.content?.parts ?? [];
  return parts.filter((p) => p.inlineData).map((p) => ({ mimeType: p.inlineData.mimeType, bytes: p.inlineData.data }));
}

const generated = await ai.models.generateContent({
  model,
  contents: "a lighthouse at dusk",
  config: { responseModalities: ["IMAGE", "TEXT"], imageConfig: { aspectRatio: "16:9" } },
});
const first = images(generated);

const edited = await ai.models.generateContent({
  model,
  contents: [
    {
      role: "user",
      parts: [
        { text: "put the lighthouse on this beach, in this palette" },
        { inlineData: { mimeType: first[0].mimeType, data: first[0].bytes } },
        { inlineData: { mimeType: "image/png", data: process.argv[3] } },
      ],
    },
  ],
});

const chunks = [];
for await (const chunk of await ai.models.generateContentStream({ model, contents: "a red kite" })) {
  chunks.push(images(chunk).length);
}

// A chat: the second turn edits the first turn's image (the SDK sends the history back).
const chat = ai.chats.create({ model, config: { imageConfig: { aspectRatio: "9:16" } } });
const firstTurn = images(await chat.sendMessage({ message: "a tall tower" }));
const secondTurn = images(await chat.sendMessage({ message: "the same tower at night" }));

let refused = null;
try {
  await ai.models.generateContent({ model: "no-such-model", contents: "a cat" });
} catch (error) {
  refused = { status: error.status, message: String(error.message) };
}

console.log(
  JSON.stringify({
    generated: first,
    edited: images(edited),
    usage: edited.usageMetadata ?? null,
    streamed: chunks,
    chat: [firstTurn.length, secondTurn.length],
    history: chat.getHistory().length,
    refused,
  }),
);
