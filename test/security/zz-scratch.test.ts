import { it } from "vitest";
import { engine, runModel } from '../support/worker.ts';
it("probe", async () => {
const tries: Record<string, any> = { short: 'c', c255: 'c'.repeat(255), c256: 'c'.repeat(256), c4000: 'c'.repeat(4000), c4001: 'c'.repeat(4001), lockConflict: null, expired: 'x' };
for (const [k, code] of Object.entries(tries)) {
  const topic = 'probe-' + Math.random().toString(36).slice(2, 8);
  const id = await runModel({ id: 'probe_' + topic.replace(/-/g,'_'), step: { kind: 'sandbox', topic, script: '1' } }, { keep: { type: 'String', value: 'k' } });
  const [task] = await engine.call<any[]>('POST', '/external-task/fetchAndLock', { workerId: 'probe', maxTasks: 1, topics: [{ topicName: topic, lockDuration: k === 'expired' ? 1 : 60000 }] });
  if (k === 'expired') { await new Promise(r => setTimeout(r, 50)); try { await engine.call('POST', `/external-task/${task.id}/complete`, { workerId: 'probe', variables: {} }); console.log(k, 'complete after expiry OK'); } catch (e) { console.log(k, String(e).slice(0,300)); } continue; }
  if (code === null) { try { await engine.call('POST', `/external-task/${task.id}/complete`, { workerId: 'other', variables: {} }); } catch (e) { console.log(k, String(e).slice(0,300)); } continue; }
  try { await engine.call('POST', `/external-task/${task.id}/bpmnError`, { workerId: 'probe', errorCode: code, errorMessage: 'm' }); console.log(k, 'bpmn ok', (await engine.historicInstance(id)).state, JSON.stringify(await engine.incidents(id))) } catch (e) { console.log(k, 'bpmn', String(e).slice(0, 300)); }
}
});
