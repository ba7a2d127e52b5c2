// Sends COUNT messages built with node-hl7-client to an MLLP receiver and prints one line per ACK:
//   ACK <MSA-1> <MSA-2>
// Each message waits for the previous ACK: node-hl7-client reads one ACK per socket read, so ACKs to
// pipelined messages that arrive together would be lost on its side.
// Usage: node node_send.mjs HOST PORT COUNT
// Exits 0 once every ACK arrived, 1 on error or after 20 s.
import { Client, Message } from 'node-hl7-client';

const [host, portText, countText] = process.argv.slice(2);
const port = Number(portText);
const count = Number(countText ?? '3');
const timer = setTimeout(() => {
  console.error('timed out waiting for ACKs');
  process.exit(1);
}, 20000);

const client = new Client({ host });
let ackReceived = () => {};
const connection = client.createConnection({ port, waitAck: true }, (res) => {
  const msg = res.getMessage();
  console.log(`ACK ${msg.get('MSA.1').toString()} ${msg.get('MSA.2').toString()}`);
  ackReceived();
});
connection.on('client.error', (err) => {
  console.error(`client error: ${err}`);
  process.exit(1);
});

for (let i = 1; i <= count; i += 1) {
  const message = new Message({
    messageHeader: {
      msh_9_1: 'ADT',
      msh_9_2: 'A01',
      msh_10: `NODE${i}`,
      msh_11_1: 'P',
    },
  });
  const pid = message.addSegment('PID');
  pid.set('3', `MRN${i}`);
  pid.set('5.1', 'DOE');
  pid.set('5.2', 'JANE');
  const acked = new Promise((resolve) => {
    ackReceived = resolve;
  });
  await connection.sendMessage(message);
  await acked;
}
clearTimeout(timer);
await connection.close();
client.closeAll();
process.exit(0);
