// Runs the example: TESSERA_URL, TESSERA_API_KEY, PORT (default 3000).
//   node example/server.js
import { createApp } from "./app.js";

const port = Number(process.env.PORT ?? 3000);
createApp({ url: process.env.TESSERA_URL, apiKey: process.env.TESSERA_API_KEY }).listen(port, "127.0.0.1", () => {
  console.log(`example listening on http://127.0.0.1:${port}`);
});
