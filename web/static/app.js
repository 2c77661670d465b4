// Placeholder; the room is built in the web client work.
document.getElementById('app').textContent = 'Tandem';
