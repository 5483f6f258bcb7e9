// Usage: node read_ui_message.mjs <url>  (the UIMessage list to POST as JSON on stdin)
// POSTs like useChat does (DefaultChatTransport), assembles the reply with the AI SDK's
// readUIMessageStream, and prints {"message": <the final UIMessage>, "errors": [<errorText>]}.
import { DefaultChatTransport, readUIMessageStream } from "ai";

const url = process.argv[2];
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const messages = JSON.parse(Buffer.concat(chunks).toString("utf8"));

const errors = [];
const transport = new DefaultChatTransport({ api: url });
const stream = await transport.sendMessages({
  chatId: "chat-1",
  messages,
  trigger: "submit-message",
  messageId: undefined,
  abortSignal: undefined,
});
let message = null;
for await (const snapshot of readUIMessageStream({
  stream,
  onError: (error) => errors.push(error.message),
})) {
  message = snapshot;
}
process.stdout.write(JSON.stringify({ message, errors }) + "\n");
