// The Vercel AI SDK's OpenAI and Google providers against a live Plantain server: an OpenAI image,
// images from google.image (generateContent; today's @ai-sdk/google refuses Imagen names) and a
// Gemini image through generateText.
// Usage: node ai_sdk_scenario.mjs BASE_URL. Prints one JSON object with what each call got back.
import { createGoogleGenerativeAI } from "@ai-sdk/google";
import { createOpenAI } from "@ai-sdk/openai";
import { generateImage, generateText } from "ai";

const base = process.argv[2];
const google = createGoogleGenerativeAI({ apiKey: "node-test-key", baseURL: `${base}/v1beta` });
const openai = createOpenAI({ apiKey: "node-test-key", baseURL: `${base}/v1` });

const fromOpenAI = await generateImage({ model: openai.image("gpt-image-1"), prompt: "a lighthouse", size: "1024x1024" });
const fromGoogle = await generateImage({
  model: google.image("gemini-2.5-flash-image"),
  prompt: "a red kite",
  aspectRatio: "16:9",
  n: 2,
});
const fromGemini = await generateText({
  model: google("gemini-2.5-flash-image"),
  prompt: "a cube on a table",
  providerOptions: { google: { responseModalities: ["TEXT", "IMAGE"] } },
});

console.log(
  JSON.stringify({
    openai: fromOpenAI.images.map((image) => image.base64),
    google: fromGoogle.images.map((image) => image.base64),
    gemini: fromGemini.files.map((file) => ({ mediaType: file.mediaType, base64: file.base64 })),
  }),
);
