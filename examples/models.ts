// The demo's processes, written as BPMN files into examples/processes by
// `node examples/models.ts` (the files are committed, so a reader can open
// them in the Camunda Modeler). Each is one realistic step.
import { writeFileSync } from 'node:fs';

import { processModel } from '../src/engine-harness/bpmn.ts';

const DISCOUNT = `var amount = execution.getVariable('amount');
var rate = amount >= 1000 ? 0.1 : 0.02;
var discount = Math.round(amount * rate * 100) / 100;
execution.setVariable('discount', discount);
discount;`;

export const MODELS = {
  invoice: processModel({
    id: 'invoice',
    name: 'Invoice total (scriptRef, Json line items, Long cents, Date)',
    step: { kind: 'sandbox', scriptRef: 'invoice-total.js', resultVariable: 'grandTotalCents' },
  }),
  'order-approval': processModel({
    id: 'order_approval',
    name: 'Order approval (raises a BPMN error over the limit)',
    catchError: 'NEEDS_APPROVAL',
    step: {
      kind: 'sandbox',
      resultVariable: 'decision',
      script: `const order = execution.getVariable('order');
const limit = execution.getVariable('approvalLimitCents');
const total = order.items.reduce((sum, item) => sum + item.priceCents * item.quantity, 0);
execution.setVariable('orderTotalCents', total);
if (total > limit) {
  throw new BpmnError('NEEDS_APPROVAL', 'order total ' + total + ' is over the limit of ' + limit, { reviewReason: 'over limit' });
}
execution.setVariable('approved', true);
'auto-approved';`,
    },
  }),
  'escape-attempt': processModel({
    id: 'escape_attempt',
    name: 'Escape attempt (Java.type, process.env, require)',
    step: {
      kind: 'sandbox',
      script: `// What someone who can deploy a model tries first.
var found = [];
try { found.push(Java.type('java.lang.System').getenv('PATH')); } catch (e) { found.push(e.name); }
try { found.push(process.env.CAMUNDA_PASSWORD); } catch (e) { found.push(e.name); }
require('child_process').execSync('id').toString();`,
    },
  }),
  'infinite-loop': processModel({
    id: 'infinite_loop',
    name: 'Infinite loop',
    step: { kind: 'sandbox', script: 'var n = 0;\nwhile (true) { n++; }' },
  }),
  'discount-inline': processModel({
    id: 'discount_inline',
    name: 'Discount, inline GraalJS script task in the engine JVM',
    step: { kind: 'inline', script: DISCOUNT, resultVariable: 'result' },
  }),
  'discount-sandbox': processModel({
    id: 'discount_sandbox',
    name: 'Discount, the same script in the sandbox',
    step: { kind: 'sandbox', script: DISCOUNT, resultVariable: 'result' },
  }),
};

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const [name, xml] of Object.entries(MODELS)) {
    writeFileSync(new URL(`./processes/${name}.bpmn`, import.meta.url), xml);
  }
}
