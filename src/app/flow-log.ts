// Flow records from the queue threads as `flow` events of the log.
import { EventLog } from '../log/event-log';
import { FlowRecord } from '../flow/flow-record';

export function logFlowRecords(log: Pick<EventLog, 'event'>, records: readonly FlowRecord[]): void {
  for (const r of records) log.event('flow', { ...r });
}
