// Parses an operator's packet description for `nfips rules test`:
//   tcp 10.0.0.5:40000 -> 192.0.2.7:23 flags S in lan0
//   udp [2001:db8::1]:5353 -> [2001:db8::53]:53 out wan0 hook input state established
//   icmp 10.0.0.5 -> 10.0.0.1 type 8 code 0
import ipaddr from 'ipaddr.js';
import { PacketSpec } from '../packet/build';
import { TCP_FLAG_NAMES } from '../packet/decoded';
import { FLOW_ESTABLISHED, FLOW_NEW } from './types';
import { PROTOCOL_NUMBERS } from './protocols';

export interface PacketDescription {
  spec: PacketSpec;
  in: string | null;
  out: string | null;
  hook: number;
  state: number;
}

const FLAG_NAMES: Record<string, number> = Object.fromEntries(TCP_FLAG_NAMES);
const FLAG_LETTERS: Record<string, number> = Object.fromEntries(TCP_FLAG_NAMES.map(([name, bit]) => [name[0], bit]));
const USAGE = 'expected "PROTO SRC[:PORT] -> DST[:PORT] [flags S|SA|SYN,ACK] [in IF] [out IF] [hook forward|input] [state new|established] [type N] [code N] [len N]"';

function endpoint(text: string): { addr: string; port?: number } {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  const v4 = /^([^:\s]+)(?::(\d+))?$/.exec(text);
  const m = v6 ?? (ipaddr.IPv6.isValid(text) ? [text, text, undefined] : v4);
  if (!m || !ipaddr.isValid(m[1])) throw new Error(`"${text}" is not an address (use [v6addr]:port for IPv6 with a port)`);
  const port = m[2] === undefined ? undefined : Number(m[2]);
  if (port !== undefined && port > 65535) throw new Error(`port ${port} is out of range`);
  return { addr: m[1], port };
}

function tcpFlags(text: string): number {
  const upper = text.toUpperCase();
  if (/^[FSRPAUEC]+$/.test(upper)) return [...upper].reduce((f, c) => f | FLAG_LETTERS[c], 0);
  return upper.split(',').reduce((f, name) => {
    const bit = FLAG_NAMES[name.trim()];
    if (bit === undefined) throw new Error(`unknown TCP flag "${name}"`);
    return f | bit;
  }, 0);
}

function int(text: string | undefined, what: string, max: number): number {
  const n = Number(text);
  if (text === undefined || !Number.isInteger(n) || n < 0 || n > max) throw new Error(`${what} needs a number 0-${max}`);
  return n;
}

export function parsePacketText(text: string): PacketDescription {
  const t = text.trim().split(/\s+/);
  if (t.length < 4 || t[2] !== '->') throw new Error(`cannot read packet "${text}": ${USAGE}`);
  const protoName = t[0].toLowerCase();
  const proto = /^\d+$/.test(protoName) ? int(protoName, 'protocol', 255) : PROTOCOL_NUMBERS[protoName];
  if (proto === undefined) throw new Error(`unknown protocol "${t[0]}"`);
  const src = endpoint(t[1]);
  const dst = endpoint(t[3]);
  const spec: PacketSpec = { src: src.addr, dst: dst.addr, proto, sport: src.port, dport: dst.port };
  const out: PacketDescription = { spec, in: null, out: null, hook: 2, state: FLOW_NEW };
  for (let k = 4; k < t.length; k += 2) {
    const key = t[k].toLowerCase();
    const val = t[k + 1];
    if (val === undefined) throw new Error(`"${t[k]}" needs a value: ${USAGE}`);
    switch (key) {
      case 'flags':
        spec.tcpFlags = tcpFlags(val);
        break;
      case 'in':
        out.in = val;
        break;
      case 'out':
        out.out = val;
        break;
      case 'hook':
        if (val !== 'forward' && val !== 'input') throw new Error('hook is forward or input');
        out.hook = val === 'input' ? 1 : 2;
        break;
      case 'state':
        if (val !== 'new' && val !== 'established') throw new Error('state is new or established');
        out.state = val === 'new' ? FLOW_NEW : FLOW_ESTABLISHED;
        break;
      case 'type':
        spec.icmpType = int(val, 'type', 255);
        break;
      case 'code':
        spec.icmpCode = int(val, 'code', 255);
        break;
      case 'len':
        spec.payloadLen = int(val, 'len', 65000);
        break;
      default:
        throw new Error(`unknown word "${t[k]}": ${USAGE}`);
    }
  }
  return out;
}
