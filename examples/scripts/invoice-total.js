// Totals an invoice: line items arrive as a Json list with amounts in cents
// (Long), the invoice date as a Date. Sets the total, the tax, the due date
// and a summary; returns the grand total as the task's result.
const lines = execution.getVariable('lineItems');
const issued = execution.getVariable('invoiceDate');
const taxRate = execution.getVariable('taxRatePercent');

let net = 0n;
const summary = lines.map((line) => {
  const amount = BigInt(line.unitCents) * BigInt(line.quantity);
  net += amount;
  return { sku: line.sku, amountCents: amount };
});

const tax = (net * BigInt(taxRate)) / 100n;
const due = new Date(issued.getTime());
due.setUTCDate(due.getUTCDate() + 30);

execution.setVariable('netCents', net);
execution.setVariable('taxCents', tax);
execution.setVariable('dueDate', due);
execution.setVariable('summary', { lines: summary, count: summary.length });
net + tax;
